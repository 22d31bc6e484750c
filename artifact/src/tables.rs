//! The decision tables: the records the kernel maps hold, and the metadata
//! userspace needs to fill the per-container rows and explain decisions.
//!
//! # How a decision is made (what the kernel computes)
//!
//! 1. **Paths and names to classes.** One deterministic automaton over path
//!    components serves three dimensions, each from its own root state:
//!    file paths (`targetFilePath`), executables (`processExecutable`) and
//!    process names (`processName`, walked as the one-component path
//!    `/<comm>`). From a state, a component `c` goes along the edge
//!    `(state, id(c))` when there is one; else along the prefix edge
//!    `(state, id(c[..L]))` for the longest `L` in the state's
//!    `prefix_lens` that has one; else to `default_next`. Component ids come
//!    from the component maps (short and long keys). The state reached at
//!    the end gives the *class*: the set of selectors whose pattern
//!    condition that path satisfies (`accept_class`), or, for an event on
//!    a directory, that the path or some path below it satisfies
//!    (`subtree_class`). Cost: O(components), whatever the number of
//!    patterns.
//! 2. **Classes to a dynamic class.** File: `file_classes[p * 18 + op * 3 +
//!    volume]`. Process: `a = process_classes_a[e * 4 + op * 2 + tty]`, then
//!    `d = process_classes_d[a * N + n]`. A dynamic class stands for the set
//!    of selectors whose every per-event condition holds.
//! 3. **Container and user.** Userspace evaluates each selector's container
//!    conditions once per container, and its user conditions
//!    ([`UserConditions`]) once per container and user id the policy can
//!    name there, and fills one row per distinct result: `row[d]` is the
//!    actions of the responses that fire for the selectors of `d` that also
//!    hold for the container and user. The kernel finds the container's row
//!    from its cgroup, then (when the policy has user conditions) the row of
//!    `(row, uid)`, and reads `row[d]`.
//!
//! So a decision is a fixed number of map lookups plus one per path
//! component: its cost does not grow with selectors or responses.

use crate::ops::Actions;
use crate::patterns::{LabelPattern, PathPattern, TextPattern};
use serde::{Deserialize, Serialize};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Section kinds of a policy artifact.
pub mod kind {
    /// Userspace metadata (postcard): [`super::Meta`].
    pub const META: u32 = 1;
    /// One [`super::Roots`] record.
    pub const ROOTS: u32 = 2;
    /// [`super::ComponentKeyShort`] records.
    pub const COMPONENT_SHORT_KEYS: u32 = 3;
    /// `u32` component ids, one per short key.
    pub const COMPONENT_SHORT_VALUES: u32 = 4;
    /// [`super::ComponentKeyLong`] records.
    pub const COMPONENT_LONG_KEYS: u32 = 5;
    /// `u32` component ids, one per long key.
    pub const COMPONENT_LONG_VALUES: u32 = 6;
    /// [`super::DfaState`] records, indexed by state id.
    pub const DFA_STATES: u32 = 7;
    /// [`super::EdgeKey`] records.
    pub const EDGE_KEYS: u32 = 8;
    /// `u32` next states, one per edge key.
    pub const EDGE_VALUES: u32 = 9;
    /// [`super::EdgeKey`] records of prefix edges.
    pub const PREFIX_EDGE_KEYS: u32 = 10;
    /// `u32` next states, one per prefix edge key.
    pub const PREFIX_EDGE_VALUES: u32 = 11;
    /// `u32` file dynamic classes, `path_class * 18 + op * 3 + volume`.
    pub const FILE_CLASSES: u32 = 12;
    /// `u32` process intermediate classes, `exe_class * 4 + op * 2 + tty`.
    pub const PROCESS_CLASSES_A: u32 = 13;
    /// `u32` process dynamic classes, `a * name_classes + name_class`.
    pub const PROCESS_CLASSES_D: u32 = 14;
}

/// Names of the section kinds, for messages and `d4cc inspect`.
pub const SECTION_NAMES: &[(u32, &str)] = &[
    (kind::META, "meta"),
    (kind::ROOTS, "roots"),
    (kind::COMPONENT_SHORT_KEYS, "component-short-keys"),
    (kind::COMPONENT_SHORT_VALUES, "component-short-values"),
    (kind::COMPONENT_LONG_KEYS, "component-long-keys"),
    (kind::COMPONENT_LONG_VALUES, "component-long-values"),
    (kind::DFA_STATES, "dfa-states"),
    (kind::EDGE_KEYS, "edge-keys"),
    (kind::EDGE_VALUES, "edge-values"),
    (kind::PREFIX_EDGE_KEYS, "prefix-edge-keys"),
    (kind::PREFIX_EDGE_VALUES, "prefix-edge-values"),
    (kind::FILE_CLASSES, "file-classes"),
    (kind::PROCESS_CLASSES_A, "process-classes-a"),
    (kind::PROCESS_CLASSES_D, "process-classes-d"),
];

/// File operations in table order (the `op` index of `file_classes`).
pub const FILE_OPS: usize = 6;
/// Volume states in table order (the `volume` index).
pub const VOLUMES: usize = 3;
/// Process operations in table order (the `op` index of `process_classes_a`).
pub const PROCESS_OPS: usize = 2;
/// Longest component the short keys hold.
pub const SHORT_COMPONENT_BYTES: usize = 28;
/// Longest component (`NAME_MAX`).
pub const LONG_COMPONENT_BYTES: usize = 255;
/// Distinct prefix lengths one state may try.
pub const MAX_PREFIX_LENS: usize = 8;
/// `default_next` of a state that has no edges of either kind: the kernel
/// may skip the lookups.
pub const STATE_HAS_EDGES: u32 = 1;
/// A settled state (issue 16): every path that continues from it ends in a
/// state with its `accept_class` and its `subtree_class`, so a walk that
/// reaches it may stop there. The dead state (nothing can match any more)
/// and the inside of a `/dir/**` with nothing more specific below are
/// settled; so is the root of a dimension without patterns, which makes a
/// policy without path conditions cost no walk at all. A reader that
/// ignores the flag walks on and finds the same class.
pub const STATE_SETTLED: u32 = 2;

/// Where each automaton starts, and the table dimensions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Roots {
    /// Root state of file paths.
    pub file_path_root: u32,
    /// Root state of executable paths.
    pub exe_root: u32,
    /// Root state of process names.
    pub name_root: u32,
    /// File path classes (P).
    pub file_path_classes: u32,
    /// Executable classes (E).
    pub exe_classes: u32,
    /// Name classes (N).
    pub name_classes: u32,
    /// Process intermediate classes (A).
    pub process_a_classes: u32,
    /// File dynamic classes.
    pub file_dyn_classes: u32,
    /// Process dynamic classes.
    pub process_dyn_classes: u32,
    /// Explicit padding: keeps the record a multiple of 8 bytes.
    pub reserved: u32,
}

/// One automaton state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DfaState {
    /// The class of a path that ends here.
    pub accept_class: u32,
    /// Where a component without an edge leads.
    pub default_next: u32,
    /// Prefix lengths to try, longest first, 0-terminated.
    pub prefix_lens: [u8; MAX_PREFIX_LENS],
    /// [`STATE_HAS_EDGES`], [`STATE_SETTLED`].
    pub flags: u32,
    /// The class of a directory that ends here (file paths only; 0 in the
    /// other dimensions): the selectors whose pattern holds for this path
    /// or for some path below it. A directory renamed or mounted stands
    /// for everything in it, which the kernel cannot list; its events are
    /// decided for the selectors that name paths (see
    /// [`Meta::file_path_subtree`]).
    pub subtree_class: u32,
}

/// A component of at most [`SHORT_COMPONENT_BYTES`] bytes, NUL padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ComponentKeyShort {
    /// Its length in bytes.
    pub len: u32,
    /// Its bytes, NUL padded.
    pub bytes: [u8; SHORT_COMPONENT_BYTES],
}

/// A component of at most [`LONG_COMPONENT_BYTES`] bytes, NUL padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ComponentKeyLong {
    /// Its length in bytes.
    pub len: u32,
    /// Its bytes, NUL padded (one spare byte keeps the size a multiple of 4).
    pub bytes: [u8; LONG_COMPONENT_BYTES + 1],
}

/// An edge: from a state, along a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EdgeKey {
    /// The state.
    pub state: u32,
    /// The component id.
    pub component: u32,
}

const _: () = {
    assert!(std::mem::size_of::<Roots>() == 40);
    assert!(std::mem::size_of::<DfaState>() == 24);
    assert!(std::mem::size_of::<ComponentKeyShort>() == 32);
    assert!(std::mem::size_of::<ComponentKeyLong>() == 260);
    assert!(std::mem::size_of::<EdgeKey>() == 8);
};

/// The per-event conditions of a selector, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DynamicConditions {
    /// Bit `i` set: operation `i` of the kind (table order) matches.
    pub operations: u8,
    /// Whether the selector has a path condition (`targetFilePath` or
    /// `processExecutable`): it then holds only for the classes listing it.
    pub has_path: bool,
    /// Whether it has a `processName` condition.
    pub has_name: bool,
    /// `ignoreVolumeMounts: true`.
    pub ignore_volume_mounts: bool,
    /// `ignoreVolumeFiles: true`.
    pub ignore_volume_files: bool,
    /// `sessionLeaderInteractive`, when written.
    pub interactive: Option<bool>,
}

impl DynamicConditions {
    /// Whether the operation, volume and terminal conditions hold (the
    /// pattern conditions are the classes' business).
    pub fn holds(&self, op: usize, volume: usize, interactive: bool) -> bool {
        let op_ok = op < 8 && self.operations & (1u8 << op) != 0;
        let volume_ok = match volume {
            0 => true,
            1 => !self.ignore_volume_mounts,
            _ => !self.ignore_volume_mounts && !self.ignore_volume_files,
        };
        op_ok && volume_ok && self.interactive.is_none_or(|wanted| wanted == interactive)
    }
}

/// A selector's container conditions: each `None` when not written, else
/// the patterns of which one must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerConditions {
    /// `containerImageFullName`.
    pub image_full_name: Option<Vec<TextPattern>>,
    /// `containerImageName`.
    pub image_name: Option<Vec<TextPattern>>,
    /// `containerImageTag`.
    pub image_tag: Option<Vec<TextPattern>>,
    /// `kubernetesClusterId`.
    pub cluster_id: Option<Vec<TextPattern>>,
    /// `kubernetesClusterName`.
    pub cluster_name: Option<Vec<TextPattern>>,
    /// `kubernetesNamespace`.
    pub namespace: Option<Vec<TextPattern>>,
    /// `kubernetesPodName`.
    pub pod_name: Option<Vec<TextPattern>>,
    /// `kubernetesPodLabel`.
    pub pod_labels: Option<Vec<LabelPattern>>,
}

/// A selector's user conditions (process selectors): each `None` when not
/// written. They are decided per container and user id, in userspace, like
/// the container conditions: the kernel reads the row of the container and
/// the acting user (see `kernel-probes`' `d4c_user_rows`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserConditions {
    /// `processUserId`: the ids, sorted, without duplicates.
    pub ids: Option<Vec<u32>>,
    /// `processUserName`: the name patterns.
    pub names: Option<Vec<TextPattern>>,
}

impl UserConditions {
    /// Whether both hold for `user`; `None` stands for any user whom no
    /// condition of the policy names (neither its id nor its name), for
    /// which a written condition never holds.
    pub fn holds(&self, user: Option<&crate::event::User>) -> bool {
        let ids = self.ids.as_ref().is_none_or(|ids| user.is_some_and(|u| ids.binary_search(&u.id).is_ok()));
        let names = self.names.as_ref().is_none_or(|names| {
            user.and_then(|u| u.name.as_deref()).is_some_and(|name| names.iter().any(|p| p.matches(name)))
        });
        ids && names
    }

    /// Whether no condition is written.
    pub fn is_empty(&self) -> bool {
        self.ids.is_none() && self.names.is_none()
    }
}

/// One selector, for userspace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorMeta {
    /// Its name.
    pub name: String,
    /// Its per-event conditions.
    pub dynamic: DynamicConditions,
    /// Its container conditions.
    pub container: ContainerConditions,
    /// Its user conditions.
    pub user: UserConditions,
    /// Its path patterns (`targetFilePath` or `processExecutable`), when written.
    pub paths: Option<Vec<PathPattern>>,
    /// Its `processName` patterns, when written.
    pub names: Option<Vec<TextPattern>>,
    /// Its pattern conditions as written (`targetFilePath: [...]`), for
    /// `inspect` and `diff`.
    pub written: Vec<String>,
}

/// One response, for userspace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResponseMeta {
    /// Selector indices of `match`.
    pub matches: Vec<u32>,
    /// Selector indices of `exclude`.
    pub excludes: Vec<u32>,
    /// Its actions.
    pub actions: Actions,
}

/// The selectors and responses of one kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindMeta {
    /// Selectors, by index.
    pub selectors: Vec<SelectorMeta>,
    /// Responses.
    pub responses: Vec<ResponseMeta>,
}

/// Everything userspace needs beside the kernel's records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The policy's `version:` string.
    pub policy_version: Option<String>,
    /// File selectors and responses.
    pub file: KindMeta,
    /// Process selectors and responses.
    pub process: KindMeta,
    /// Per file path class, the file selectors whose `targetFilePath` holds.
    pub file_path_classes: Vec<Vec<u32>>,
    /// Per file path class, whether it is a subtree class (a directory's):
    /// then only selectors with a `targetFilePath` can hold for its events.
    pub file_path_subtree: Vec<bool>,
    /// Per executable class, the process selectors whose `processExecutable` holds.
    pub exe_classes: Vec<Vec<u32>>,
    /// Per name class, the process selectors whose `processName` holds.
    pub name_classes: Vec<Vec<u32>>,
    /// Per file dynamic class, one `(path class, op, volume)` that has it.
    pub file_dyn_reps: Vec<[u32; 3]>,
    /// Per process intermediate class, one `(exe class, op, tty)` that has it.
    pub process_a_reps: Vec<[u32; 3]>,
    /// Per process dynamic class, one `(a, name class)` that has it.
    pub process_dyn_reps: Vec<[u32; 2]>,
}
