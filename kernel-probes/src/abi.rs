//! The records shared with the BPF programs: the Rust side of
//! `include/d4c_abi.h`. Field for field the same, with compile-time size
//! and offset checks here, and tests that compare the header's constants
//! and the compiled object's BTF with this module.
//!
//! The table records are `d4c_artifact::tables`' own (that crate is the
//! spec of their layout); this module re-exports them and checks their
//! offsets against the C structs.

use std::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use d4c_artifact::tables::{
    ComponentKeyLong, ComponentKeyShort, DfaState, EdgeKey, Roots, FILE_OPS, LONG_COMPONENT_BYTES, MAX_PREFIX_LENS,
    PROCESS_OPS, SHORT_COMPONENT_BYTES, STATE_HAS_EDGES, VOLUMES,
};

/// The longest path the kernel walks whole (`D4C_PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Bytes of a process name (`D4C_NAME_BYTES`, the kernel's `TASK_COMM_LEN`).
pub const NAME_BYTES: usize = 16;
/// `D4C_KIND_FILE`.
pub const KIND_FILE: u32 = 0;
/// `D4C_KIND_PROCESS`.
pub const KIND_PROCESS: u32 = 1;
/// `D4C_EVENT_HAS_PATH`: the file event has a path.
pub const EVENT_HAS_PATH: u32 = 1;
/// `D4C_RESULT_TRUNCATED`: the path was longer than [`PATH_MAX`]; only its
/// first [`PATH_MAX`] bytes were walked. Fail closed.
pub const RESULT_TRUNCATED: u32 = 1;
/// `D4C_RESULT_NO_ROW`: the container's row has no entry for the class.
pub const RESULT_NO_ROW: u32 = 2;
/// `D4C_RESULT_ERROR`: a lookup that cannot fail did.
pub const RESULT_ERROR: u32 = 4;
/// `D4C_RESULT_NAME_TRUNCATED`: the name was longer than [`NAME_BYTES`].
pub const RESULT_NAME_TRUNCATED: u32 = 8;

/// The constants of `include/d4c_abi.h`, by their C names, with the Rust
/// values they must equal.
pub const CONSTANTS: &[(&str, u64)] = &[
    ("D4C_FILE_OPS", FILE_OPS as u64),
    ("D4C_VOLUMES", VOLUMES as u64),
    ("D4C_PROCESS_OPS", PROCESS_OPS as u64),
    ("D4C_SHORT_COMPONENT_BYTES", SHORT_COMPONENT_BYTES as u64),
    ("D4C_LONG_COMPONENT_BYTES", LONG_COMPONENT_BYTES as u64),
    ("D4C_MAX_PREFIX_LENS", MAX_PREFIX_LENS as u64),
    ("D4C_STATE_HAS_EDGES", STATE_HAS_EDGES as u64),
    ("D4C_PATH_MAX", PATH_MAX as u64),
    ("D4C_NAME_BYTES", NAME_BYTES as u64),
    ("D4C_KIND_FILE", KIND_FILE as u64),
    ("D4C_KIND_PROCESS", KIND_PROCESS as u64),
    ("D4C_EVENT_HAS_PATH", EVENT_HAS_PATH as u64),
    ("D4C_RESULT_TRUNCATED", RESULT_TRUNCATED as u64),
    ("D4C_RESULT_NO_ROW", RESULT_NO_ROW as u64),
    ("D4C_RESULT_ERROR", RESULT_ERROR as u64),
    ("D4C_RESULT_NAME_TRUNCATED", RESULT_NAME_TRUNCATED as u64),
];

/// The C header itself, for the constants test.
pub const HEADER: &str = include_str!("../include/d4c_abi.h");

/// `struct d4c_row_key`: a row entry's key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RowKey {
    /// The container's row.
    pub row: u32,
    /// [`KIND_FILE`] or [`KIND_PROCESS`].
    pub kind: u32,
    /// The dynamic class.
    pub dyn_class: u32,
}

/// `struct d4c_event_head`: what the decision needs of an event beside
/// the path bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EventHead {
    /// [`KIND_FILE`] or [`KIND_PROCESS`].
    pub kind: u32,
    /// The operation's table index.
    pub op: u32,
    /// File: the volume's table index.
    pub volume: u32,
    /// Process: 1 when the session has a terminal.
    pub interactive: u32,
    /// The container's row.
    pub row: u32,
    /// [`EVENT_HAS_PATH`].
    pub flags: u32,
    /// Bytes of the path (file path or executable).
    pub path_len: u32,
    /// Bytes of the process name.
    pub name_len: u32,
    /// The process name, NUL padded.
    pub name: [u8; NAME_BYTES],
}

/// `struct d4c_test_event`: the harness's packet, a head then the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TestEvent {
    /// The head.
    pub head: EventHead,
    /// The path bytes.
    pub path: [u8; PATH_MAX],
}

/// `struct d4c_result`: one decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DecisionResult {
    /// [`KIND_FILE`] or [`KIND_PROCESS`].
    pub kind: u32,
    /// The dynamic class.
    pub dyn_class: u32,
    /// The row entry's action bits.
    pub actions: u32,
    /// `RESULT_*` bits.
    pub flags: u32,
    /// The file path class, or the executable class.
    pub path_class: u32,
    /// Process: the name class.
    pub name_class: u32,
    /// Automaton steps taken over the path.
    pub steps: u32,
    /// Explicit padding.
    pub reserved: u32,
}

/// A shared struct's C name, size, and fields with their offsets.
pub type Layout = (&'static str, usize, Vec<(&'static str, usize)>);

/// Sizes and field offsets of every shared struct, by C name: what the BTF
/// test compares with the compiled object.
pub fn layouts() -> Vec<Layout> {
    vec![
        (
            "d4c_roots",
            size_of::<Roots>(),
            vec![
                ("file_path_root", offset_of!(Roots, file_path_root)),
                ("exe_root", offset_of!(Roots, exe_root)),
                ("name_root", offset_of!(Roots, name_root)),
                ("file_path_classes", offset_of!(Roots, file_path_classes)),
                ("exe_classes", offset_of!(Roots, exe_classes)),
                ("name_classes", offset_of!(Roots, name_classes)),
                ("process_a_classes", offset_of!(Roots, process_a_classes)),
                ("file_dyn_classes", offset_of!(Roots, file_dyn_classes)),
                ("process_dyn_classes", offset_of!(Roots, process_dyn_classes)),
                ("reserved", offset_of!(Roots, reserved)),
            ],
        ),
        (
            "d4c_dfa_state",
            size_of::<DfaState>(),
            vec![
                ("accept_class", offset_of!(DfaState, accept_class)),
                ("default_next", offset_of!(DfaState, default_next)),
                ("prefix_lens", offset_of!(DfaState, prefix_lens)),
                ("flags", offset_of!(DfaState, flags)),
                ("reserved", offset_of!(DfaState, reserved)),
            ],
        ),
        (
            "d4c_component_key_short",
            size_of::<ComponentKeyShort>(),
            vec![("len", offset_of!(ComponentKeyShort, len)), ("bytes", offset_of!(ComponentKeyShort, bytes))],
        ),
        (
            "d4c_component_key_long",
            size_of::<ComponentKeyLong>(),
            vec![("len", offset_of!(ComponentKeyLong, len)), ("bytes", offset_of!(ComponentKeyLong, bytes))],
        ),
        (
            "d4c_edge_key",
            size_of::<EdgeKey>(),
            vec![("state", offset_of!(EdgeKey, state)), ("component", offset_of!(EdgeKey, component))],
        ),
        (
            "d4c_row_key",
            size_of::<RowKey>(),
            vec![
                ("row", offset_of!(RowKey, row)),
                ("kind", offset_of!(RowKey, kind)),
                ("dyn_class", offset_of!(RowKey, dyn_class)),
            ],
        ),
        (
            "d4c_event_head",
            size_of::<EventHead>(),
            vec![
                ("kind", offset_of!(EventHead, kind)),
                ("op", offset_of!(EventHead, op)),
                ("volume", offset_of!(EventHead, volume)),
                ("interactive", offset_of!(EventHead, interactive)),
                ("row", offset_of!(EventHead, row)),
                ("flags", offset_of!(EventHead, flags)),
                ("path_len", offset_of!(EventHead, path_len)),
                ("name_len", offset_of!(EventHead, name_len)),
                ("name", offset_of!(EventHead, name)),
            ],
        ),
        (
            "d4c_test_event",
            size_of::<TestEvent>(),
            vec![("head", offset_of!(TestEvent, head)), ("path", offset_of!(TestEvent, path))],
        ),
        (
            "d4c_result",
            size_of::<DecisionResult>(),
            vec![
                ("kind", offset_of!(DecisionResult, kind)),
                ("dyn_class", offset_of!(DecisionResult, dyn_class)),
                ("actions", offset_of!(DecisionResult, actions)),
                ("flags", offset_of!(DecisionResult, flags)),
                ("path_class", offset_of!(DecisionResult, path_class)),
                ("name_class", offset_of!(DecisionResult, name_class)),
                ("steps", offset_of!(DecisionResult, steps)),
                ("reserved", offset_of!(DecisionResult, reserved)),
            ],
        ),
    ]
}

const _: () = {
    assert!(size_of::<Roots>() == 40);
    assert!(size_of::<DfaState>() == 24);
    assert!(offset_of!(DfaState, prefix_lens) == 8);
    assert!(offset_of!(DfaState, flags) == 16);
    assert!(size_of::<ComponentKeyShort>() == 32);
    assert!(offset_of!(ComponentKeyShort, bytes) == 4);
    assert!(size_of::<ComponentKeyLong>() == 260);
    assert!(offset_of!(ComponentKeyLong, bytes) == 4);
    assert!(size_of::<EdgeKey>() == 8);
    assert!(size_of::<RowKey>() == 12);
    assert!(size_of::<EventHead>() == 48);
    assert!(offset_of!(EventHead, name) == 32);
    assert!(size_of::<TestEvent>() == 48 + PATH_MAX);
    assert!(offset_of!(TestEvent, path) == 48);
    assert!(size_of::<DecisionResult>() == 32);
    assert!(offset_of!(DecisionResult, steps) == 24);
};
