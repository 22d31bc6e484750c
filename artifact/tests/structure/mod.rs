//! Structure-aware mutations of valid artifacts, for the table reader
//! (issue 14, fault 1: a component id of 0xFFFFFFFF, with valid digests,
//! made `Tables::read` allocate from it before checking it).
//!
//! Shared by the test `tests/tables_mutations.rs` (a proptest in the test
//! suite) and the fuzz target `tables` (`fuzz/fuzz_targets/tables.rs`),
//! which include this file, and `tests/common/mod.rs` for `reseal`.
//!
//! An input is a stream of choices, not artifact bytes: the first picks a
//! valid artifact (a golden artifact of `d4cc compile`), the rest pick
//! mutations of its *structure*, each decoded against the artifact as the
//! mutations before it left it: a field of a table record (a root, a count,
//! a state's class or successor, an edge's state or component, a component
//! key's length or id, a class) set to a boundary value (0, 1, a count
//! minus one, the count, the count plus one, `u16::MAX`, `u32::MAX`...),
//! records truncated, duplicated, removed, swapped or appended, the
//! metadata's indices, lists and selectors edited, a class dimension grown
//! consistently across the roots, the metadata and the class tables, a
//! section dropped, moved or given another record size, or the laid-out
//! section table and header edited (a section's offset, length, record size
//! or count, its length and count changed together, the section count, the
//! content length). The artifact is then written again and sealed (every
//! digest recomputed, signed with a test key if it was signed), so that
//! every mutation gets past SHA-256 to the reader's structural checks,
//! `Tables::read` and evaluation.
//!
//! [`check`] reads the result as the runtime and `d4cc test` do, decides a
//! set of events against the tables read, and asserts that nothing panics,
//! that no allocation is out of proportion to the file (measured by
//! [`CountingAlloc`], which the including binary installs), that a refusal
//! is an error with a message, and, for accepted tables, that decisions
//! agree with the rows the runtime writes and that the tables write back
//! and read again the same.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use d4c_artifact::eval::Tables;
use d4c_artifact::event::{Container, Event, FileEvent, ProcessEvent, Volume};
use d4c_artifact::ops::{Kind, Operation};
use d4c_artifact::patterns::{LabelPattern, TextPattern};
use d4c_artifact::tables::{
    kind, ComponentKeyLong, ComponentKeyShort, ContainerConditions, DfaState, Meta, Roots, FILE_OPS,
    LONG_COMPONENT_BYTES, PROCESS_OPS, SHORT_COMPONENT_BYTES, VOLUMES,
};
use d4c_artifact::{
    aligned_copy, section_name, sign, Artifact, ArtifactWriter, Header, SectionEntry, SectionFlags, SectionKind,
    SigningKey, WriterMeta, HEADER_SIZE, SECTION_ENTRY_SIZE,
};
use zerocopy::{FromBytes, IntoBytes};

use super::common::reseal;

/// The valid artifacts mutations start from: the golden artifacts, which
/// `compiler/tests/golden.rs` keeps equal to what `d4cc compile` writes.
pub const SEEDS: [(&str, &[u8]); 4] = [
    ("default", include_bytes!("../../../testdata/golden/default.d4c")),
    ("drift-prevention", include_bytes!("../../../testdata/golden/drift-prevention.d4c")),
    ("every-condition", include_bytes!("../../../testdata/golden/every-condition.d4c")),
    ("seed-block-example", include_bytes!("../../../testdata/golden/seed-block-example.d4c")),
];

/// At most this many mutations per input.
pub const MAX_MUTATIONS: usize = 16;

/// The key a mutated artifact is signed with when its seed was signed or a
/// mutation asks for it.
pub fn test_key() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32])
}

/// The choices an input holds, taken from its front; zeros once it is
/// used up.
pub struct Choices<'a> {
    rest: &'a [u8],
}

impl<'a> Choices<'a> {
    pub fn new(bytes: &'a [u8]) -> Choices<'a> {
        Choices { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let v = usize::from(u16::from_le_bytes([self.byte(), self.byte()]));
        v.checked_rem(n).unwrap_or(0)
    }

    pub fn word(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        let at = self.below(from.len());
        from.get(at).copied()
    }
}

/// Values that sit on the edges of what the reader checks.
const BOUNDARIES: [u32; 16] = [
    0,
    1,
    2,
    0xff,
    0x100,
    SHORT_COMPONENT_BYTES as u32,
    SHORT_COMPONENT_BYTES as u32 + 1,
    LONG_COMPONENT_BYTES as u32,
    LONG_COMPONENT_BYTES as u32 + 1,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    200_000_000,
    u32::MAX - 1,
    u32::MAX,
];

/// A boundary value, a count of the artifact give or take one, or any word.
fn value(ch: &mut Choices<'_>, counts: &[u32]) -> u32 {
    match ch.byte() % 4 {
        0 => ch.pick(&BOUNDARIES).unwrap_or(0),
        1 | 2 => {
            let n = ch.pick(counts).unwrap_or(0);
            match ch.byte() % 3 {
                0 => n.wrapping_sub(1),
                1 => n,
                _ => n.wrapping_add(1),
            }
        }
        _ => ch.word(),
    }
}

/// One section of the model: what the writer is given.
#[derive(Clone, Debug)]
pub struct Section {
    pub kind: u32,
    pub flags: u32,
    pub record_size: u32,
    pub bytes: Vec<u8>,
}

/// A change in the length of a list (of records, of metadata entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    Truncate(usize),
    Duplicate(usize),
    Remove(usize),
    Swap(usize, usize),
    /// Appends copies of the last element (of `fill` when there is none).
    Grow(usize),
}

impl Resize {
    fn decode(ch: &mut Choices<'_>, len: usize) -> Resize {
        match ch.byte() % 5 {
            0 => {
                let keep = [0, 1, len / 2, len.saturating_sub(1)];
                Resize::Truncate(ch.pick(&keep).unwrap_or(0))
            }
            1 => Resize::Duplicate(ch.below(len)),
            2 => Resize::Remove(ch.below(len)),
            3 => Resize::Swap(ch.below(len), ch.below(len)),
            _ => Resize::Grow(ch.pick(&[1, 2, 3, 64]).unwrap_or(1)),
        }
    }

    pub fn apply<T: Clone>(self, v: &mut Vec<T>, fill: T) {
        match self {
            Resize::Truncate(n) => v.truncate(n),
            Resize::Duplicate(i) => {
                if let Some(x) = v.get(i).cloned() {
                    v.insert(i, x);
                }
            }
            Resize::Remove(i) => {
                if i < v.len() {
                    v.remove(i);
                }
            }
            Resize::Swap(a, b) => {
                if a < v.len() && b < v.len() {
                    v.swap(a, b);
                }
            }
            Resize::Grow(n) => {
                let x = v.last().cloned().unwrap_or(fill);
                v.extend(std::iter::repeat_n(x, n));
            }
        }
    }
}

/// The lists of the metadata a [`Mutation::MetaList`] resizes; the inner
/// lists (`[i]`) are those of one element of the outer one.
pub const META_LISTS: [&str; 17] = [
    "file_path_classes",
    "file_path_subtree",
    "exe_classes",
    "name_classes",
    "file_dyn_reps",
    "process_a_reps",
    "process_dyn_reps",
    "file.selectors",
    "process.selectors",
    "file.responses",
    "process.responses",
    "file_path_classes[i]",
    "exe_classes[i]",
    "name_classes[i]",
    "file.responses[i].matches",
    "process.responses[i].matches",
    "file.responses[i].excludes",
];

/// The class dimensions a [`Mutation::Grow`] grows consistently.
pub const DIMENSIONS: [&str; 7] = [
    "states",
    "file path classes",
    "executable classes",
    "name classes",
    "process intermediate classes",
    "file dynamic classes",
    "process dynamic classes",
];

/// An edit of a selector in the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectorEdit {
    Operations(u8),
    HasPath(bool),
    HasName(bool),
    Interactive(Option<bool>),
    IgnoreVolumes(bool, bool),
    /// Container condition `field` (0 image full name .. 6 pod name).
    Text(usize, Option<Vec<TextPattern>>),
    Labels(Option<Vec<LabelPattern>>),
}

/// A value of a field of the laid-out section table or header, resolved
/// when the edit is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    Abs(u64),
    /// The entry's offset plus this.
    Offset(i64),
    /// The entry's length plus this.
    Length(i64),
    /// The header's content length plus this.
    ContentLength(i64),
    /// The file's length plus this.
    FileLength(i64),
}

const RAW_VALUES: [Value; 20] = [
    Value::Abs(0),
    Value::Abs(1),
    Value::Abs(64),
    Value::Abs(0xffff),
    Value::Abs(0xffff_ffff),
    Value::Abs(0x1_0000_0000),
    Value::Abs(u64::MAX - 63),
    Value::Abs(u64::MAX),
    Value::Offset(-64),
    Value::Offset(0),
    Value::Offset(1),
    Value::Offset(64),
    Value::Length(-1),
    Value::Length(1),
    Value::Length(64),
    Value::ContentLength(-64),
    Value::ContentLength(0),
    Value::ContentLength(1),
    Value::FileLength(0),
    Value::FileLength(88),
];

/// A field of a section table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryField {
    Kind,
    Flags,
    Offset,
    Length,
    RecordSize,
    RecordCount,
}

/// An edit of the laid-out bytes, before they are sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawEdit {
    Entry {
        index: usize,
        field: EntryField,
        value: Value,
    },
    /// The entry's record count and length changed together (the bytes stay
    /// where they are).
    Count {
        index: usize,
        count: u32,
    },
    SectionCount(u32),
    ContentLength(Value),
}

impl RawEdit {
    fn apply(self, bytes: &mut [u8]) {
        let Ok((mut header, _)) = Header::read_from_prefix(bytes) else { return };
        let file_len = bytes.len() as u64;
        let resolve = |value: Value, entry: Option<&SectionEntry>, header: &Header| match value {
            Value::Abs(v) => v,
            Value::Offset(d) => entry.map_or(0, |e| e.offset).wrapping_add_signed(d),
            Value::Length(d) => entry.map_or(0, |e| e.length).wrapping_add_signed(d),
            Value::ContentLength(d) => header.content_length.wrapping_add_signed(d),
            Value::FileLength(d) => file_len.wrapping_add_signed(d),
        };
        let index = match self {
            RawEdit::Entry { index, .. } | RawEdit::Count { index, .. } => index,
            RawEdit::SectionCount(count) => {
                header.section_count = count;
                if let Some(h) = bytes.get_mut(..HEADER_SIZE) {
                    h.copy_from_slice(header.as_bytes());
                }
                return;
            }
            RawEdit::ContentLength(value) => {
                header.content_length = resolve(value, None, &header);
                if let Some(h) = bytes.get_mut(..HEADER_SIZE) {
                    h.copy_from_slice(header.as_bytes());
                }
                return;
            }
        };
        let at = HEADER_SIZE + index * SECTION_ENTRY_SIZE;
        let Some(raw) = bytes.get_mut(at..at + SECTION_ENTRY_SIZE) else { return };
        let Ok(mut entry) = SectionEntry::read_from_bytes(raw) else { return };
        match self {
            RawEdit::Entry { field, value, .. } => {
                let v = resolve(value, Some(&entry), &header);
                match field {
                    EntryField::Kind => entry.kind = v as u32,
                    EntryField::Flags => entry.flags = v as u32,
                    EntryField::Offset => entry.offset = v,
                    EntryField::Length => entry.length = v,
                    EntryField::RecordSize => entry.record_size = v as u32,
                    EntryField::RecordCount => entry.record_count = v as u32,
                }
            }
            RawEdit::Count { count, .. } => {
                entry.record_count = count;
                entry.length = u64::from(entry.record_size) * u64::from(count);
            }
            RawEdit::SectionCount(_) | RawEdit::ContentLength(_) => {}
        }
        raw.copy_from_slice(entry.as_bytes());
    }
}

/// One mutation, as decoded from an input (what a failure reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// A 32-bit field of a record.
    Word {
        section: &'static str,
        record: usize,
        field: &'static str,
        value: u32,
    },
    /// A byte of a record (a prefix length, a component's bytes).
    Byte {
        section: &'static str,
        record: usize,
        byte: usize,
        value: u8,
    },
    Records {
        section: &'static str,
        op: Resize,
    },
    RecordSize {
        section: &'static str,
        record_size: u32,
    },
    DropSection {
        section: &'static str,
    },
    SwapSections {
        a: usize,
        b: usize,
    },
    /// A selector index, class or representative in the metadata.
    MetaWord {
        at: usize,
        value: u32,
    },
    MetaList {
        list: &'static str,
        at: usize,
        op: Resize,
    },
    Selector {
        file: bool,
        selector: usize,
        edit: SelectorEdit,
    },
    Grow {
        dimension: &'static str,
        by: u32,
    },
    Raw(RawEdit),
    /// A short component key moved to the long keys, with its id.
    ToLongKey {
        record: usize,
    },
    /// Signed or not (a signature block to read past).
    Signed(bool),
}

fn name(kind: u32) -> &'static str {
    section_name(kind).unwrap_or("unknown")
}

/// The names of the 32-bit fields of a section's records, in order.
fn fields(kind: u32) -> &'static [&'static str] {
    match kind {
        kind::ROOTS => &[
            "file_path_root",
            "exe_root",
            "name_root",
            "file_path_classes",
            "exe_classes",
            "name_classes",
            "process_a_classes",
            "file_dyn_classes",
            "process_dyn_classes",
            "reserved",
        ],
        kind::DFA_STATES => {
            &["accept_class", "default_next", "prefix_lens[0..4]", "prefix_lens[4..8]", "flags", "subtree_class"]
        }
        kind::COMPONENT_SHORT_KEYS | kind::COMPONENT_LONG_KEYS => &["len", "bytes[0..4]"],
        kind::EDGE_KEYS | kind::PREFIX_EDGE_KEYS => &["state", "component"],
        _ => &["value"],
    }
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// An artifact as the writer is given it, and the edits of its layout.
#[derive(Clone, Debug)]
pub struct Model {
    pub meta: WriterMeta,
    pub sections: Vec<Section>,
    pub raw: Vec<RawEdit>,
    pub signed: bool,
}

impl Model {
    /// The model of a valid artifact.
    pub fn decode(bytes: &[u8]) -> Result<Model, String> {
        let a = Artifact::parse(bytes).map_err(|e| e.to_string())?;
        let h = a.header();
        let meta = WriterMeta {
            policy_name: a.policy_name().to_string(),
            compiler_version: a.compiler_version().to_string(),
            revision: h.revision,
            created_unix: Some(h.created_unix),
            source_digest: h.source_digest,
        };
        let sections = a
            .sections()
            .map(|s| Section {
                kind: s.kind().0,
                flags: s.flags().0,
                record_size: s.record_size(),
                bytes: s.bytes().to_vec(),
            })
            .collect();
        Ok(Model { meta, sections, raw: Vec::new(), signed: !a.signatures().is_empty() })
    }

    /// The artifact's bytes: written, edited, sealed and signed. An error
    /// only when the writer refuses the model (a mutation broke its rules).
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut w = ArtifactWriter::new(self.meta.clone());
        for s in &self.sections {
            w.add_section(SectionKind(s.kind), SectionFlags(s.flags), s.record_size, s.bytes.clone())
                .map_err(|e| e.to_string())?;
        }
        let mut bytes = w.finish().map_err(|e| e.to_string())?;
        if !self.raw.is_empty() {
            for edit in &self.raw {
                edit.apply(&mut bytes);
            }
            reseal(&mut bytes);
        }
        if self.signed {
            // An artifact the container checks refuse cannot be signed: it
            // stays unsigned, and is refused all the same.
            if let Ok(signed) = sign(&bytes, &test_key()) {
                bytes = signed;
            }
        }
        Ok(bytes)
    }

    fn section(&self, kind: u32) -> Option<&Section> {
        self.sections.iter().find(|s| s.kind == kind)
    }

    fn section_mut(&mut self, kind: u32) -> Option<&mut Section> {
        self.sections.iter_mut().find(|s| s.kind == kind)
    }

    fn record_count(&self, kind: u32) -> u32 {
        self.section(kind).map_or(0, |s| s.bytes.len().checked_div(s.record_size as usize).unwrap_or(0) as u32)
    }

    /// The `u32` words of a section (the roots' fields, a class table).
    pub fn words(&self, kind: u32) -> Vec<u32> {
        self.section(kind).map(|s| words(&s.bytes)).unwrap_or_default()
    }

    /// Replaces the words of a section of `u32` records (of another
    /// record size after a mutation: left as it is).
    pub fn set_words(&mut self, kind: u32, new: &[u32]) {
        if let Some(s) = self.section_mut(kind).filter(|s| s.record_size == 4) {
            s.bytes = new.as_bytes().to_vec();
        }
    }

    pub fn roots(&self) -> Option<Roots> {
        self.section(kind::ROOTS).and_then(|s| Roots::read_from_prefix(&s.bytes).ok()).map(|(r, _)| r)
    }

    pub fn set_roots(&mut self, roots: &Roots) {
        if let Some(s) = self.section_mut(kind::ROOTS) {
            if let Some(head) = s.bytes.get_mut(..size_of::<Roots>()) {
                head.copy_from_slice(roots.as_bytes());
            }
        }
    }

    pub fn meta(&self) -> Option<Meta> {
        self.section(kind::META).and_then(|s| postcard::from_bytes(&s.bytes).ok())
    }

    pub fn set_meta(&mut self, meta: &Meta) {
        let blob = self.section_mut(kind::META).filter(|s| s.record_size == 0);
        if let (Some(s), Ok(bytes)) = (blob, postcard::to_allocvec(meta)) {
            s.bytes = bytes;
        }
    }

    /// Sets 32-bit field `word` of record `record` of section `kind`.
    pub fn set_word(&mut self, kind: u32, record: usize, word: usize, value: u32) -> bool {
        let Some(s) = self.section_mut(kind) else { return false };
        let at = record * s.record_size as usize + word * 4;
        match s.bytes.get_mut(at..at + 4) {
            Some(dest) if word * 4 + 4 <= s.record_size as usize => {
                dest.copy_from_slice(&value.to_le_bytes());
                true
            }
            _ => false,
        }
    }

    /// The counts of the artifact: records per section, components, the
    /// roots' fields, selectors.
    fn counts(&self) -> Vec<u32> {
        let mut counts: Vec<u32> = self
            .sections
            .iter()
            .filter(|s| s.record_size > 0)
            .map(|s| (s.bytes.len() / s.record_size as usize) as u32)
            .collect();
        counts.push(self.record_count(kind::COMPONENT_SHORT_KEYS) + self.record_count(kind::COMPONENT_LONG_KEYS));
        counts.extend(self.words(kind::ROOTS));
        if let Some(m) = self.meta() {
            counts.extend([m.file.selectors.len() as u32, m.process.selectors.len() as u32]);
        }
        counts
    }

    /// Decodes one mutation from `ch` and applies it; `None` when the
    /// choice found nothing to mutate.
    pub fn mutate(&mut self, ch: &mut Choices<'_>) -> Option<Mutation> {
        let counts = self.counts();
        let with_records: Vec<usize> = (0..self.sections.len())
            .filter(|&i| self.sections.get(i).is_some_and(|s| s.record_size > 0 && !s.bytes.is_empty()))
            .collect();
        match ch.byte() % 12 {
            0..=2 => {
                let s = self.sections.get(ch.pick(&with_records)?)?;
                let (kind, size) = (s.kind, s.record_size as usize);
                let record = ch.below(s.bytes.len() / size);
                let names = fields(kind);
                let word = ch.below(names.len().min(size / 4));
                let value = value(ch, &counts);
                self.set_word(kind, record, word, value).then_some(())?;
                Some(Mutation::Word { section: name(kind), record, field: names.get(word).copied()?, value })
            }
            3 => {
                let s = self.sections.get_mut(ch.pick(&with_records)?)?;
                let record = ch.below(s.bytes.len() / s.record_size as usize);
                let byte = ch.below(s.record_size as usize);
                let value = ch.pick(&[0, 1, b'/', b'.', 0x7f, 0x80, 0xc0, 0xff, 27, 28, 29, 255])?;
                *s.bytes.get_mut(record * s.record_size as usize + byte)? = value;
                Some(Mutation::Byte { section: name(s.kind), record, byte, value })
            }
            4 => {
                let records: Vec<usize> = (0..self.sections.len())
                    .filter(|&i| self.sections.get(i).is_some_and(|s| s.record_size > 0))
                    .collect();
                let s = self.sections.get_mut(ch.pick(&records)?)?;
                let size = s.record_size as usize;
                let mut list: Vec<Vec<u8>> = s.bytes.chunks_exact(size).map(<[u8]>::to_vec).collect();
                let op = Resize::decode(ch, list.len());
                op.apply(&mut list, vec![0; size]);
                s.bytes = list.concat();
                Some(Mutation::Records { section: name(s.kind), op })
            }
            5 | 6 => {
                let mut meta = self.meta()?;
                let mut all = meta_words(&mut meta);
                let at = ch.below(all.len());
                let value = value(ch, &counts);
                **all.get_mut(at)? = value;
                self.set_meta(&meta);
                Some(Mutation::MetaWord { at, value })
            }
            7 => {
                let mut meta = self.meta()?;
                let list = ch.below(META_LISTS.len());
                let at = ch.below(meta_list_len(&meta, list, None));
                let op = Resize::decode(ch, meta_list_len(&meta, list, Some(at)));
                meta_resize(&mut meta, list, at, op);
                self.set_meta(&meta);
                Some(Mutation::MetaList { list: META_LISTS.get(list).copied()?, at, op })
            }
            8 => {
                let mut meta = self.meta()?;
                let file = ch.byte().is_multiple_of(2);
                let selectors = if file { &mut meta.file.selectors } else { &mut meta.process.selectors };
                let selector = ch.below(selectors.len());
                let s = selectors.get_mut(selector)?;
                let edit = selector_edit(ch);
                let d = &mut s.dynamic;
                match edit.clone() {
                    SelectorEdit::Operations(bits) => d.operations = bits,
                    SelectorEdit::HasPath(b) => d.has_path = b,
                    SelectorEdit::HasName(b) => d.has_name = b,
                    SelectorEdit::Interactive(i) => d.interactive = i,
                    SelectorEdit::IgnoreVolumes(mounts, files) => {
                        (d.ignore_volume_mounts, d.ignore_volume_files) = (mounts, files)
                    }
                    SelectorEdit::Text(field, patterns) => *text_condition(&mut s.container, field)? = patterns,
                    SelectorEdit::Labels(patterns) => s.container.pod_labels = patterns,
                }
                self.set_meta(&meta);
                Some(Mutation::Selector { file, selector, edit })
            }
            9 => {
                let dimension = ch.below(DIMENSIONS.len());
                let by = ch.pick(&[1, 2, 3, 64])?;
                self.grow(dimension, by)?;
                Some(Mutation::Grow { dimension: DIMENSIONS.get(dimension).copied()?, by })
            }
            10 => {
                let index = ch.below(self.sections.len() + 1);
                let edit = match ch.byte() % 8 {
                    0..=3 => {
                        let field = ch.pick(&[
                            EntryField::Kind,
                            EntryField::Flags,
                            EntryField::Offset,
                            EntryField::Length,
                            EntryField::RecordSize,
                            EntryField::RecordCount,
                        ])?;
                        let value = match field {
                            EntryField::Kind => {
                                Value::Abs(u64::from(ch.pick(&[0u32, 1, 2, 3, 4, 7, 14, 15, 0x7000_0000])?))
                            }
                            EntryField::Flags => Value::Abs(u64::from(ch.pick(&[0, 1, 2, u32::MAX])?)),
                            _ => ch.pick(&RAW_VALUES)?,
                        };
                        RawEdit::Entry { index, field, value }
                    }
                    4 | 5 => RawEdit::Count { index, count: value(ch, &counts) },
                    6 => {
                        let n = self.sections.len() as u32;
                        RawEdit::SectionCount(ch.pick(&[0, n.saturating_sub(1), n + 1, u32::MAX])?)
                    }
                    _ => RawEdit::ContentLength(ch.pick(&RAW_VALUES)?),
                };
                self.raw.push(edit);
                Some(Mutation::Raw(edit))
            }
            _ => match ch.byte() % 5 {
                0 => {
                    let at = ch.below(self.sections.len());
                    let s = self.sections.get(at)?;
                    let section = name(s.kind);
                    self.sections.remove(at);
                    Some(Mutation::DropSection { section })
                }
                1 => {
                    let (a, b) = (ch.below(self.sections.len()), ch.below(self.sections.len()));
                    if a >= self.sections.len() || b >= self.sections.len() {
                        return None;
                    }
                    self.sections.swap(a, b);
                    Some(Mutation::SwapSections { a, b })
                }
                2 => {
                    let at = ch.below(self.sections.len());
                    let record_size = ch.pick(&[0, 1, 2, 4, 8, 24, 32, 40, 260])?;
                    let s = self.sections.get_mut(at)?;
                    if record_size > 0 {
                        let keep = s.bytes.len() / record_size as usize * record_size as usize;
                        s.bytes.truncate(keep);
                    }
                    s.record_size = record_size;
                    Some(Mutation::RecordSize { section: name(s.kind), record_size })
                }
                3 => {
                    let record = ch.below(self.record_count(kind::COMPONENT_SHORT_KEYS) as usize);
                    self.move_to_long(record)?;
                    Some(Mutation::ToLongKey { record })
                }
                _ => {
                    self.signed = !self.signed;
                    Some(Mutation::Signed(self.signed))
                }
            },
        }
    }

    /// Moves short component key `record` and its id to the long keys (the
    /// seeds have no long key; the reader takes a short string there).
    pub fn move_to_long(&mut self, record: usize) -> Option<()> {
        const SHORT: usize = size_of::<ComponentKeyShort>();
        const LONG: usize = size_of::<ComponentKeyLong>();
        let sized = |m: &Model, kind: u32, size: usize| m.section(kind).is_some_and(|s| s.record_size as usize == size);
        if !(sized(self, kind::COMPONENT_SHORT_KEYS, SHORT)
            && sized(self, kind::COMPONENT_LONG_KEYS, LONG)
            && sized(self, kind::COMPONENT_SHORT_VALUES, 4)
            && sized(self, kind::COMPONENT_LONG_VALUES, 4))
        {
            return None;
        }
        let mut ids = self.words(kind::COMPONENT_SHORT_VALUES);
        let mut long_ids = self.words(kind::COMPONENT_LONG_VALUES);
        if record >= ids.len() || ids.len() != self.record_count(kind::COMPONENT_SHORT_KEYS) as usize {
            return None;
        }
        long_ids.push(ids.remove(record));
        let short = self.section_mut(kind::COMPONENT_SHORT_KEYS)?;
        let mut key: Vec<u8> = short.bytes.drain(record * SHORT..(record + 1) * SHORT).collect();
        key.resize(LONG, 0);
        self.section_mut(kind::COMPONENT_LONG_KEYS)?.bytes.extend(key);
        self.set_words(kind::COMPONENT_SHORT_VALUES, &ids);
        self.set_words(kind::COMPONENT_LONG_VALUES, &long_ids);
        Some(())
    }

    /// Grows a class dimension by `by` everywhere it shows (the roots, the
    /// metadata, the class tables), so that the tables stay consistent.
    pub fn grow(&mut self, dimension: usize, by: u32) -> Option<()> {
        let n = by as usize;
        if dimension == 0 {
            let s = self.section_mut(kind::DFA_STATES).filter(|s| s.record_size as usize == size_of::<DfaState>())?;
            s.bytes.extend(std::iter::repeat_n(DfaState::default(), n).flat_map(|d| d.as_bytes().to_vec()));
            return Some(());
        }
        let mut roots = self.roots()?;
        let mut meta = self.meta()?;
        // Rows of `process_classes_d` are rebuilt from these: dimensions a
        // mutation made huge are left as they are (the reader refuses them).
        if roots.name_classes > 4096 || roots.process_a_classes > 4096 {
            return None;
        }
        let append = |model: &mut Model, kind: u32, count: usize| {
            let mut w = model.words(kind);
            w.extend(std::iter::repeat_n(0, count));
            model.set_words(kind, &w);
        };
        match dimension {
            1 => {
                roots.file_path_classes = roots.file_path_classes.saturating_add(by);
                meta.file_path_classes.extend(std::iter::repeat_n(Vec::new(), n));
                meta.file_path_subtree.extend(std::iter::repeat_n(false, n));
                append(self, kind::FILE_CLASSES, n * FILE_OPS * VOLUMES);
            }
            2 => {
                roots.exe_classes = roots.exe_classes.saturating_add(by);
                meta.exe_classes.extend(std::iter::repeat_n(Vec::new(), n));
                append(self, kind::PROCESS_CLASSES_A, n * PROCESS_OPS * 2);
            }
            3 => {
                // `process_classes_d` is `a * name_classes + name`: each row
                // of the old width gets `by` more entries.
                let width = roots.name_classes as usize;
                let old = self.words(kind::PROCESS_CLASSES_D);
                let new: Vec<u32> = if width == 0 {
                    vec![0; roots.process_a_classes as usize * n]
                } else {
                    old.chunks(width).flat_map(|row| row.iter().copied().chain(std::iter::repeat_n(0, n))).collect()
                };
                self.set_words(kind::PROCESS_CLASSES_D, &new);
                roots.name_classes = roots.name_classes.saturating_add(by);
                meta.name_classes.extend(std::iter::repeat_n(Vec::new(), n));
            }
            4 => {
                roots.process_a_classes = roots.process_a_classes.saturating_add(by);
                meta.process_a_reps.extend(std::iter::repeat_n([0; 3], n));
                append(self, kind::PROCESS_CLASSES_D, n * roots.name_classes as usize);
            }
            5 => {
                roots.file_dyn_classes = roots.file_dyn_classes.saturating_add(by);
                meta.file_dyn_reps.extend(std::iter::repeat_n([0; 3], n));
            }
            _ => {
                roots.process_dyn_classes = roots.process_dyn_classes.saturating_add(by);
                meta.process_dyn_reps.extend(std::iter::repeat_n([0; 2], n));
            }
        }
        self.set_roots(&roots);
        self.set_meta(&meta);
        Some(())
    }
}

/// Every index the metadata holds: the selectors of the classes, the
/// class representatives, the selectors of the responses.
fn meta_words(m: &mut Meta) -> Vec<&mut u32> {
    let mut all: Vec<&mut u32> = Vec::new();
    all.extend(m.file_path_classes.iter_mut().flatten());
    all.extend(m.exe_classes.iter_mut().flatten());
    all.extend(m.name_classes.iter_mut().flatten());
    all.extend(m.file_dyn_reps.iter_mut().flatten());
    all.extend(m.process_a_reps.iter_mut().flatten());
    all.extend(m.process_dyn_reps.iter_mut().flatten());
    all.extend(m.file.responses.iter_mut().flat_map(|r| r.matches.iter_mut().chain(r.excludes.iter_mut())));
    all.extend(m.process.responses.iter_mut().flat_map(|r| r.matches.iter_mut().chain(r.excludes.iter_mut())));
    all
}

/// The length of list `list` of [`META_LISTS`]; for an inner list, of
/// element `at` of its outer list (`None`: the outer list).
fn meta_list_len(m: &Meta, list: usize, at: Option<usize>) -> usize {
    let inner = |v: &Vec<Vec<u32>>| at.map_or(v.len(), |i| v.get(i).map_or(0, Vec::len));
    match list {
        0 => m.file_path_classes.len(),
        1 => m.file_path_subtree.len(),
        2 => m.exe_classes.len(),
        3 => m.name_classes.len(),
        4 => m.file_dyn_reps.len(),
        5 => m.process_a_reps.len(),
        6 => m.process_dyn_reps.len(),
        7 => m.file.selectors.len(),
        8 => m.process.selectors.len(),
        9 => m.file.responses.len(),
        10 => m.process.responses.len(),
        11 => inner(&m.file_path_classes),
        12 => inner(&m.exe_classes),
        13 => inner(&m.name_classes),
        14 => at.map_or(m.file.responses.len(), |i| m.file.responses.get(i).map_or(0, |r| r.matches.len())),
        15 => at.map_or(m.process.responses.len(), |i| m.process.responses.get(i).map_or(0, |r| r.matches.len())),
        _ => at.map_or(m.file.responses.len(), |i| m.file.responses.get(i).map_or(0, |r| r.excludes.len())),
    }
}

fn meta_resize(m: &mut Meta, list: usize, at: usize, op: Resize) {
    match list {
        0 => op.apply(&mut m.file_path_classes, Vec::new()),
        1 => op.apply(&mut m.file_path_subtree, true),
        2 => op.apply(&mut m.exe_classes, Vec::new()),
        3 => op.apply(&mut m.name_classes, Vec::new()),
        4 => op.apply(&mut m.file_dyn_reps, [0; 3]),
        5 => op.apply(&mut m.process_a_reps, [0; 3]),
        6 => op.apply(&mut m.process_dyn_reps, [0; 2]),
        7 => op.apply(&mut m.file.selectors, Default::default()),
        8 => op.apply(&mut m.process.selectors, Default::default()),
        9 => op.apply(&mut m.file.responses, Default::default()),
        10 => op.apply(&mut m.process.responses, Default::default()),
        11 => m.file_path_classes.get_mut(at).into_iter().for_each(|v| op.apply(v, 0)),
        12 => m.exe_classes.get_mut(at).into_iter().for_each(|v| op.apply(v, 0)),
        13 => m.name_classes.get_mut(at).into_iter().for_each(|v| op.apply(v, 0)),
        14 => m.file.responses.get_mut(at).into_iter().for_each(|r| op.apply(&mut r.matches, 0)),
        15 => m.process.responses.get_mut(at).into_iter().for_each(|r| op.apply(&mut r.matches, 0)),
        _ => m.file.responses.get_mut(at).into_iter().for_each(|r| op.apply(&mut r.excludes, 0)),
    }
}

fn text_condition(c: &mut ContainerConditions, field: usize) -> Option<&mut Option<Vec<TextPattern>>> {
    Some(match field {
        0 => &mut c.image_full_name,
        1 => &mut c.image_name,
        2 => &mut c.image_tag,
        3 => &mut c.cluster_id,
        4 => &mut c.cluster_name,
        5 => &mut c.namespace,
        6 => &mut c.pod_name,
        _ => return None,
    })
}

fn selector_edit(ch: &mut Choices<'_>) -> SelectorEdit {
    let text = |ch: &mut Choices<'_>| -> Option<Vec<TextPattern>> {
        let values = ["", "nginx", "docker.io/library/nginx", "web-", "é", "\u{0}"];
        let value = ch.pick(&values).unwrap_or("").to_string();
        match ch.byte() % 4 {
            0 => None,
            1 => Some(Vec::new()),
            2 => Some(vec![TextPattern::Exact(value)]),
            _ => Some(vec![TextPattern::Prefix(value)]),
        }
    };
    match ch.byte() % 7 {
        0 => SelectorEdit::Operations(ch.pick(&[0, 1, 0x3f, 0xff]).unwrap_or(0)),
        1 => SelectorEdit::HasPath(ch.byte().is_multiple_of(2)),
        2 => SelectorEdit::HasName(ch.byte().is_multiple_of(2)),
        3 => SelectorEdit::Interactive(ch.pick(&[None, Some(false), Some(true)]).flatten()),
        4 => SelectorEdit::IgnoreVolumes(ch.byte().is_multiple_of(2), ch.byte().is_multiple_of(2)),
        5 => {
            let field = ch.below(7);
            SelectorEdit::Text(field, text(ch))
        }
        _ => {
            let key = ch.pick(&["", "app", "a/b"]).unwrap_or("").to_string();
            SelectorEdit::Labels(
                text(ch).map(|v| v.into_iter().map(|value| LabelPattern { key: key.clone(), value }).collect()),
            )
        }
    }
}

/// How far an input got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `Artifact::parse` refused it, with this message.
    ParseRefused(String),
    /// `Tables::read` refused it, with this message.
    TablesRefused(String),
    /// The tables were read and decided every event.
    Read,
}

/// An input's artifact: the seed it picks and the mutations it decodes.
pub struct Run {
    pub seed: &'static str,
    pub mutations: Vec<Mutation>,
    pub bytes: Vec<u8>,
}

/// Builds the artifact an input describes.
pub fn build(input: &[u8]) -> Run {
    let mut ch = Choices::new(input);
    let (seed, seed_bytes) = ch.pick(&SEEDS).unwrap_or(SEEDS[0]);
    let mut model = Model::decode(seed_bytes).unwrap_or_else(|e| panic!("seed {seed} is not a valid artifact: {e}"));
    let mut mutations = Vec::new();
    while !ch.is_empty() && mutations.len() < MAX_MUTATIONS {
        mutations.extend(model.mutate(&mut ch));
    }
    let bytes =
        model.encode().unwrap_or_else(|e| panic!("seed {seed}, {mutations:?}: the writer refused the model: {e}"));
    Run { seed, mutations, bytes }
}

/// Builds the artifact an input describes, reads it and decides events
/// with it, asserting what the module documentation lists.
pub fn check(input: &[u8]) -> Outcome {
    let run = build(input);
    check_bytes(&run.bytes, &format!("seed {}, mutations {:?}", run.seed, run.mutations))
}

/// The largest single allocation reading and evaluating an artifact of
/// `len` bytes may make: postcard preallocates at most 1 MiB for a list
/// whatever length it claims, and nothing else more than a small multiple
/// of what the file holds.
pub fn allocation_limit(len: usize) -> usize {
    (1 << 20) + 64 * len
}

/// The most that reading and evaluating an artifact of `len` bytes may
/// hold at once.
pub fn peak_limit(len: usize) -> usize {
    (4 << 20) + 256 * len
}

/// [`check`] for bytes made otherwise; `context` names them in failures.
pub fn check_bytes(bytes: &[u8], context: &str) -> Outcome {
    let meter = Meter::start();
    let result = read_and_evaluate(bytes);
    let usage = meter.stop();
    assert!(usage.calls > 0, "structure::CountingAlloc is not the global allocator: allocation is not measured");
    assert!(
        usage.largest <= allocation_limit(bytes.len()),
        "{context}: an allocation of {} bytes reading an artifact of {} bytes",
        usage.largest,
        bytes.len()
    );
    assert!(
        usage.peak <= peak_limit(bytes.len()),
        "{context}: {} bytes held at once reading an artifact of {} bytes",
        usage.peak,
        bytes.len()
    );
    let outcome = match result {
        Err(outcome) => outcome,
        Ok(tables) => {
            round_trip(&tables, context);
            Outcome::Read
        }
    };
    if let Outcome::ParseRefused(message) | Outcome::TablesRefused(message) = &outcome {
        assert!(!message.trim().is_empty(), "{context}: a refusal without a message: {outcome:?}");
    }
    outcome
}

/// What the runtime and `d4cc test` do with an artifact: parse it from an
/// aligned buffer, read its tables, decide events.
fn read_and_evaluate(bytes: &[u8]) -> Result<Tables, Outcome> {
    let aligned = aligned_copy(bytes);
    let artifact = Artifact::parse(&aligned).map_err(|e| Outcome::ParseRefused(e.to_string()))?;
    let tables = Tables::read(&artifact).map_err(|e| Outcome::TablesRefused(e.to_string()))?;
    evaluate(&tables);
    Ok(tables)
}

/// Accepted tables write back (as `d4cc` writes them) and read the same.
fn round_trip(tables: &Tables, context: &str) {
    let mut writer = ArtifactWriter::new(WriterMeta::default());
    tables.write_into(&mut writer).unwrap_or_else(|e| panic!("{context}: tables read cannot be written: {e}"));
    let bytes = aligned_copy(&writer.finish().unwrap_or_else(|e| panic!("{context}: {e}")));
    let artifact = Artifact::parse(&bytes).unwrap_or_else(|e| panic!("{context}: written tables do not parse: {e}"));
    let again = Tables::read(&artifact).unwrap_or_else(|e| panic!("{context}: written tables do not read: {e}"));
    assert!(again == *tables, "{context}: tables written and read again differ");
}

/// A container whose metadata matches the first pattern of each container
/// condition of the selectors (so that conditional selectors hold in it).
fn container_of(meta: &Meta) -> Container {
    let text = |p: &TextPattern| match p {
        TextPattern::Exact(x) | TextPattern::Prefix(x) => x.clone(),
    };
    let first = |patterns: &Option<Vec<TextPattern>>| patterns.as_ref().and_then(|v| v.first()).map(text);
    let mut c = Container::default();
    for s in meta.file.selectors.iter().chain(&meta.process.selectors) {
        let k = &s.container;
        c.image_full_name = c.image_full_name.or_else(|| first(&k.image_full_name));
        c.image_name = c.image_name.or_else(|| first(&k.image_name));
        c.image_tag = c.image_tag.or_else(|| first(&k.image_tag));
        c.cluster_id = c.cluster_id.or_else(|| first(&k.cluster_id));
        c.cluster_name = c.cluster_name.or_else(|| first(&k.cluster_name));
        c.namespace = c.namespace.or_else(|| first(&k.namespace));
        c.pod_name = c.pod_name.or_else(|| first(&k.pod_name));
        if let Some(label) = k.pod_labels.as_ref().and_then(|v| v.first()) {
            if c.labels.len() < 8 {
                c.labels.push((label.key.clone(), text(&label.value)));
            }
        }
    }
    c
}

/// Decides file and process events on paths made of the tables' own
/// components (and a few others) in two containers, and checks each
/// decision against the rows the runtime would write.
fn evaluate(t: &Tables) {
    let mut paths: Vec<String> =
        ["/", "/etc/passwd", "/usr/bin/bash", "relative", "", "//"].into_iter().map(String::from).collect();
    for c in t.components.iter().take(8) {
        paths.extend([format!("/{c}"), format!("/{c}/{c}"), format!("/usr/{c}x")]);
    }
    let names: Vec<&str> = t.components.iter().map(String::as_str).chain(["bash", ""]).collect();
    let containers = [Container::default(), container_of(&t.meta)];
    let kinds = [Kind::File, Kind::Process];
    let counts = [t.roots.file_dyn_classes as usize, t.roots.process_dyn_classes as usize];
    let selectors = [t.meta.file.selectors.len(), t.meta.process.selectors.len()];
    let rows: Vec<Vec<_>> =
        kinds.iter().map(|&k| containers.iter().map(|c| t.row(k, &t.container_selectors(k, c))).collect()).collect();
    let unknown: Vec<_> = kinds.iter().map(|&k| t.row_for_unknown_container(k)).collect();
    for (k, kind_rows) in rows.iter().enumerate() {
        for row in kind_rows {
            assert_eq!(row.len(), counts[k], "a row's length is not its kind's dynamic classes");
        }
        assert_eq!(unknown[k].len(), counts[k], "the unknown container's row is not of its kind's classes");
    }
    let file_ops = Operation::of_kind(Kind::File);
    let process_ops = Operation::of_kind(Kind::Process);
    for (i, path) in paths.iter().enumerate() {
        let file = Event::File(FileEvent {
            operation: file_ops[i % file_ops.len()],
            path: (i % 7 != 6).then(|| path.clone()),
            volume: Volume::ALL[i % Volume::ALL.len()],
            directory: i % 2 == 1,
        });
        let process = Event::Process(ProcessEvent {
            operation: process_ops[i % process_ops.len()],
            executable: path.clone(),
            name: names.get(i % names.len().max(1)).copied().unwrap_or_default().to_string(),
            interactive: i % 3 == 0,
            user: d4c_artifact::event::User::root(),
        });
        for (k, event) in [file, process].iter().enumerate() {
            let (kind, class) = t.dynamic_class(event);
            assert_eq!(kind, kinds[k]);
            let class = class as usize;
            assert!(class < counts[k].max(1), "{event:?}: class {class} of {} classes", counts[k]);
            for (c, container) in containers.iter().enumerate() {
                let verdict = t.decide(container, event);
                assert!(verdict.matched.iter().all(|&s| s < selectors[k]), "{event:?}: {verdict:?}");
                if let Some(&actions) = rows[k][c].get(class) {
                    assert_eq!(verdict.actions, actions, "{event:?}: the decision is not the row's");
                }
                if let Some(&all) = unknown[k].get(class) {
                    assert!(all.contains(verdict.actions), "{event:?}: {verdict:?} is not in the unknown row {all:?}");
                }
            }
        }
    }
}

/// Allocation, measured per thread while a [`Meter`] runs.
struct Usage {
    calls: usize,
    largest: usize,
    peak: usize,
}

struct MeterState {
    on: Cell<bool>,
    calls: Cell<usize>,
    live: Cell<isize>,
    peak: Cell<isize>,
    largest: Cell<usize>,
}

thread_local! {
    static METER: MeterState = const {
        MeterState {
            on: Cell::new(false),
            calls: Cell::new(0),
            live: Cell::new(0),
            peak: Cell::new(0),
            largest: Cell::new(0),
        }
    };
}

struct Meter;

impl Meter {
    fn start() -> Meter {
        METER.with(|m| {
            m.calls.set(0);
            m.live.set(0);
            m.peak.set(0);
            m.largest.set(0);
            m.on.set(true);
        });
        Meter
    }

    fn stop(self) -> Usage {
        METER.with(|m| {
            m.on.set(false);
            Usage { calls: m.calls.get(), largest: m.largest.get(), peak: m.peak.get().max(0) as usize }
        })
    }
}

fn note(grown: usize, freed: usize) {
    let _ = METER.try_with(|m| {
        if m.on.get() {
            m.calls.set(m.calls.get() + 1);
            m.live.set(m.live.get() + grown as isize - freed as isize);
            m.peak.set(m.peak.get().max(m.live.get()));
            m.largest.set(m.largest.get().max(grown));
        }
    });
}

/// The system allocator, measuring what the current thread allocates while
/// [`check`] reads an artifact. The binary that includes this module
/// installs it: `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

// Test support only: each call is passed to the system allocator as it is.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 0);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 0);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size, layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
