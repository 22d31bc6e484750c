//! Stage 4: the checked model to decision tables.
//!
//! Input: a [`CheckedPolicy`] without errors. Output: [`Tables`] (see
//! `d4c_artifact::tables` for how the kernel uses them), or a
//! [`LowerError`] naming the limit a policy exceeds and its figure.
//!
//! Interning keeps the tables small and exact:
//! - a file dynamic class is a distinct set of selectors whose per-event
//!   conditions hold. Selectors without `targetFilePath` form one set per
//!   (operation, volume), shared by every path class, so the key is that
//!   set's id plus the (sparse) path selectors that hold;
//! - process classes are built in two steps, executable then name, keyed
//!   the same way. Their table is the product of the intermediate classes
//!   and the name classes, which is what [`MAX_CLASS_ENTRIES`] bounds.

mod dfa;

use crate::ast::{ConditionKey, PolicyKind};
use crate::limits::MAX_PATH_PREFIXES;
use crate::model::{CheckedPolicy, RuleSet, SelectorModel, Values};
use d4c_artifact::eval::{Tables, TablesError};
use d4c_artifact::patterns::{PathPattern, TextPattern};
use d4c_artifact::tables::{
    ContainerConditions, DynamicConditions, EdgeKey, KindMeta, Meta, ResponseMeta, Roots, SelectorMeta, UserConditions,
    FILE_OPS, PROCESS_OPS, VOLUMES,
};
use dfa::{Automaton, DfaError};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

/// Most entries the class tables (file, process intermediate, process
/// dynamic) may hold together: 16 MiB of kernel memory at 4 bytes each.
pub const MAX_CLASS_ENTRIES: usize = 4 * 1024 * 1024;

/// Most automaton states.
pub const MAX_DFA_STATES: usize = 4 * 1024 * 1024;

// Each path prefix makes at most three states, and each of the three
// dimensions' roots three more: a policy within `MAX_PATH_PREFIXES` (which
// lint checks) never needs more than `MAX_DFA_STATES`.
const _: () = assert!(3 * (MAX_PATH_PREFIXES + 3) <= MAX_DFA_STATES);

/// Why a checked policy cannot be lowered: a capacity limit, with figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LowerError {
    /// A directory with more distinct `prefix*` lengths than a state tries.
    TooManyPrefixLengths {
        /// The directory.
        directory: String,
        /// How many.
        lengths: usize,
        /// The limit.
        limit: usize,
    },
    /// A path component longer than `NAME_MAX` (255 bytes).
    ComponentTooLong {
        /// The component.
        component: String,
    },
    /// The class tables would be too large.
    TooManyClassEntries {
        /// File entries.
        file: usize,
        /// Process entries (intermediate plus dynamic).
        process: usize,
        /// Executable classes, intermediate classes and name classes, to
        /// say where the size comes from.
        detail: String,
    },
    /// Too many automaton states.
    TooManyStates {
        /// How many at least.
        states: usize,
    },
    /// More distinct path prefixes than [`MAX_PATH_PREFIXES`].
    TooManyPathPrefixes {
        /// How many.
        prefixes: usize,
    },
    /// A `network:` section, which the tables cannot hold yet (`D4C0044`).
    NetworkNotCompiled {
        /// Its selectors.
        selectors: usize,
    },
    /// The tables failed their own consistency check (a compiler bug).
    Internal(String),
}

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LowerError::TooManyPrefixLengths { directory, lengths, limit } => write!(
                f,
                "the patterns ending in `*` in `{directory}` have {lengths} different lengths; d4c's tables try at most {limit} per directory"
            ),
            LowerError::ComponentTooLong { component } => {
                write!(f, "the path component `{component}` is longer than 255 bytes, so no path has it")
            }
            LowerError::TooManyClassEntries { file, process, detail } => write!(
                f,
                "the decision tables would need {} entries (file {file}, process {process}: {detail}); d4c's limit is {MAX_CLASS_ENTRIES}",
                file + process
            ),
            LowerError::TooManyStates { states } => {
                write!(f, "the path automaton would need at least {states} states; d4c's limit is {MAX_DFA_STATES}")
            }
            LowerError::TooManyPathPrefixes { prefixes } => write!(
                f,
                "the path patterns have {prefixes} distinct prefixes; d4c's path automaton holds {MAX_PATH_PREFIXES}"
            ),
            LowerError::NetworkNotCompiled { selectors } => write!(
                f,
                "the policy has a `network:` section ({selectors} selectors), which this version of d4c cannot enforce (D4C0044)"
            ),
            LowerError::Internal(message) => write!(f, "internal error: the tables are inconsistent: {message}"),
        }
    }
}

impl std::error::Error for LowerError {}

impl From<DfaError> for LowerError {
    fn from(e: DfaError) -> Self {
        match e {
            DfaError::TooManyPrefixLengths { directory, lengths } => {
                LowerError::TooManyPrefixLengths { directory, lengths, limit: d4c_artifact::tables::MAX_PREFIX_LENS }
            }
            DfaError::ComponentTooLong { component } => LowerError::ComponentTooLong { component },
            DfaError::TooManyStates { states } => LowerError::TooManyStates { states },
        }
    }
}

impl From<TablesError> for LowerError {
    fn from(e: TablesError) -> Self {
        LowerError::Internal(e.0)
    }
}

/// Lowers a checked policy (which must have no errors) to tables.
pub fn lower(policy: &CheckedPolicy) -> Result<Tables, LowerError> {
    // Lint refuses it (`D4C0044`); refused again here, for callers that
    // did not lint: dropping the rules silently would fail open.
    if !policy.network.selectors.is_empty() || !policy.network.responses.is_empty() {
        return Err(LowerError::NetworkNotCompiled { selectors: policy.network.selectors.len() });
    }
    let file_paths = patterns_of(&policy.file, ConditionKey::TargetFilePath);
    let exe_paths = patterns_of(&policy.process, ConditionKey::ProcessExecutable);
    let names = name_patterns(&policy.process);
    // Lint reports this limit (`D4C0033`); checked again here, before
    // anything is built, for callers that did not lint.
    let prefixes = prefixes_of(&file_paths, &exe_paths, &names);
    if prefixes > MAX_PATH_PREFIXES {
        return Err(LowerError::TooManyPathPrefixes { prefixes });
    }
    let mut automaton = Automaton::new(MAX_DFA_STATES);
    let (file_path_root, file_classes_built) = dfa::build(&mut automaton, &file_paths, dfa::Subtrees::Yes)?;
    let dfa::Classes { sets: file_path_classes, subtree: file_path_subtree } = file_classes_built;
    let (exe_root, exe_classes) = dfa::build(&mut automaton, &exe_paths, dfa::Subtrees::No)?;
    let exe_classes = exe_classes.sets;
    let (name_root, name_classes) = dfa::build(&mut automaton, &names, dfa::Subtrees::No)?;
    let name_classes = name_classes.sets;
    if automaton.states.len() > MAX_DFA_STATES {
        return Err(LowerError::TooManyStates { states: automaton.states.len() });
    }
    automaton.mark_settled();

    let file_meta = kind_meta(&policy.file, PolicyKind::File);
    let process_meta = kind_meta(&policy.process, PolicyKind::Process);

    let file_entries = file_path_classes.len() * FILE_OPS * VOLUMES;
    let exe_entries = exe_classes.len() * PROCESS_OPS * 2;
    if file_entries + exe_entries > MAX_CLASS_ENTRIES {
        return Err(too_many(file_entries, exe_entries, exe_classes.len(), None, name_classes.len()));
    }
    let (file_classes, file_dyn_reps) = file_class_table(&file_meta, &file_path_classes, &file_path_subtree);
    let (process_a, process_a_reps, process_d, process_dyn_reps) =
        process_class_tables(&process_meta, &exe_classes, &name_classes, MAX_CLASS_ENTRIES - file_entries)
            .map_err(|a| too_many(file_entries, exe_entries, exe_classes.len(), Some(a), name_classes.len()))?;

    let roots = Roots {
        file_path_root,
        exe_root,
        name_root,
        file_path_classes: count(file_path_classes.len()),
        exe_classes: count(exe_classes.len()),
        name_classes: count(name_classes.len()),
        process_a_classes: count(process_a_reps.len()),
        file_dyn_classes: count(file_dyn_reps.len()),
        process_dyn_classes: count(process_dyn_reps.len()),
        reserved: 0,
    };
    automaton.edges.sort_unstable();
    automaton.prefix_edges.sort_unstable();
    let edges = automaton.edges.iter().map(|&(state, component, next)| (EdgeKey { state, component }, next)).collect();
    let prefix_edges =
        automaton.prefix_edges.iter().map(|&(state, component, next)| (EdgeKey { state, component }, next)).collect();
    let meta = Meta {
        policy_version: policy.version.clone(),
        file: file_meta,
        process: process_meta,
        file_path_classes,
        file_path_subtree,
        exe_classes,
        name_classes,
        file_dyn_reps,
        process_a_reps,
        process_dyn_reps,
    };
    Ok(Tables::new(
        roots,
        automaton.states,
        automaton.components,
        edges,
        prefix_edges,
        file_classes,
        process_a,
        process_d,
        meta,
    )?)
}

/// The distinct path prefixes of a checked policy, what
/// [`MAX_PATH_PREFIXES`] limits: of `targetFilePath` patterns, of
/// `processExecutable` patterns and of `processName` values (each as
/// `/<name>`), counted apart. A sort of the patterns; allocates one pair
/// per pattern, no map.
pub fn path_prefixes(policy: &CheckedPolicy) -> usize {
    let file_paths = patterns_of(&policy.file, ConditionKey::TargetFilePath);
    let exe_paths = patterns_of(&policy.process, ConditionKey::ProcessExecutable);
    let names = name_patterns(&policy.process);
    prefixes_of(&file_paths, &exe_paths, &names)
}

fn prefixes_of(
    file: &[(PathPattern, Vec<u32>)],
    exe: &[(PathPattern, Vec<u32>)],
    names: &[(PathPattern, Vec<u32>)],
) -> usize {
    [file, exe, names].iter().map(|patterns| dfa::prefixes(patterns.iter().map(|(p, _)| p))).sum()
}

/// Counts path prefixes one pattern at a time, to find where a policy
/// crosses [`MAX_PATH_PREFIXES`]: see [`dfa::PrefixCounter`].
pub use dfa::PrefixCounter;

/// A `processName` value as the one-component path the automaton walks.
pub fn name_pattern(name: &TextPattern) -> PathPattern {
    match name {
        TextPattern::Exact(n) => PathPattern::Exact(format!("/{n}")),
        TextPattern::Prefix(p) if p.is_empty() => PathPattern::Recursive(String::new()),
        TextPattern::Prefix(p) => PathPattern::Prefix(format!("/{p}")),
    }
}

fn too_many(file: usize, exe_entries: usize, exe: usize, a: Option<usize>, names: usize) -> LowerError {
    let detail = match a {
        Some(a) => format!("{exe} executable classes, {a} intermediate classes × {names} name classes"),
        None => format!("{exe} executable classes"),
    };
    LowerError::TooManyClassEntries { file, process: exe_entries + a.unwrap_or(0) * names, detail }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The distinct patterns of path condition `key`, each with its selectors.
fn patterns_of(rules: &RuleSet, key: ConditionKey) -> Vec<(PathPattern, Vec<u32>)> {
    let mut by_pattern: BTreeMap<PathPattern, Vec<u32>> = BTreeMap::new();
    for (index, selector) in (0u32..).zip(&rules.selectors) {
        if let Some(Values::Paths(paths)) = selector.condition(key) {
            for path in paths {
                by_pattern.entry(path.clone()).or_default().push(index);
            }
        }
    }
    by_pattern.into_iter().collect()
}

/// `processName` patterns as one-component paths (`/<name>`), so the same
/// automaton serves names.
fn name_patterns(rules: &RuleSet) -> Vec<(PathPattern, Vec<u32>)> {
    let mut by_pattern: BTreeMap<PathPattern, Vec<u32>> = BTreeMap::new();
    for (index, selector) in (0u32..).zip(&rules.selectors) {
        if let Some(Values::Text(names)) = selector.condition(ConditionKey::ProcessName) {
            for name in names {
                by_pattern.entry(name_pattern(name)).or_default().push(index);
            }
        }
    }
    by_pattern.into_iter().collect()
}

fn kind_meta(rules: &RuleSet, kind: PolicyKind) -> KindMeta {
    KindMeta {
        selectors: rules.selectors.iter().map(|s| selector_meta(s, kind)).collect(),
        responses: rules
            .responses
            .iter()
            .map(|r| ResponseMeta {
                matches: r.matches.iter().map(|&i| count(i)).collect(),
                excludes: r.excludes.iter().map(|&i| count(i)).collect(),
                actions: r.actions,
            })
            .collect(),
    }
}

fn selector_meta(selector: &SelectorModel, kind: PolicyKind) -> SelectorMeta {
    let text = |key| match selector.condition(key) {
        Some(Values::Text(t)) => Some(t.clone()),
        _ => None,
    };
    let operations = match selector.operations() {
        None => u8::MAX,
        Some(ops) => ops.iter().fold(0u8, |bits, op| bits | (1 << op.table_index())),
    };
    let flag = |key| matches!(selector.condition(key), Some(Values::Flag(true)));
    let path_key = match kind {
        PolicyKind::File => ConditionKey::TargetFilePath,
        PolicyKind::Process | PolicyKind::Network => ConditionKey::ProcessExecutable,
    };
    SelectorMeta {
        name: selector.name.clone(),
        dynamic: DynamicConditions {
            operations,
            has_path: selector.condition(path_key).is_some(),
            has_name: selector.condition(ConditionKey::ProcessName).is_some(),
            ignore_volume_mounts: flag(ConditionKey::IgnoreVolumeMounts),
            ignore_volume_files: flag(ConditionKey::IgnoreVolumeFiles),
            interactive: match selector.condition(ConditionKey::SessionLeaderInteractive) {
                Some(Values::Flag(b)) => Some(*b),
                _ => None,
            },
        },
        container: ContainerConditions {
            image_full_name: text(ConditionKey::ContainerImageFullName),
            image_name: text(ConditionKey::ContainerImageName),
            image_tag: text(ConditionKey::ContainerImageTag),
            cluster_id: text(ConditionKey::KubernetesClusterId),
            cluster_name: text(ConditionKey::KubernetesClusterName),
            namespace: text(ConditionKey::KubernetesNamespace),
            pod_name: text(ConditionKey::KubernetesPodName),
            pod_labels: match selector.condition(ConditionKey::KubernetesPodLabel) {
                Some(Values::Labels(l)) => Some(l.clone()),
                _ => None,
            },
        },
        user: UserConditions {
            // Checked values are exact decimal ids (no wildcard, no leading
            // zero); a condition whose every value was refused is kept
            // empty, matching no one.
            ids: text(ConditionKey::ProcessUserId).map(|patterns| {
                let ids: BTreeSet<u32> = patterns
                    .iter()
                    .filter_map(|p| match p {
                        TextPattern::Exact(id) => id.parse().ok(),
                        TextPattern::Prefix(_) => None,
                    })
                    .collect();
                ids.into_iter().collect()
            }),
            names: text(ConditionKey::ProcessUserName),
        },
        paths: match selector.condition(path_key) {
            Some(Values::Paths(p)) => Some(p.clone()),
            _ => None,
        },
        names: text(ConditionKey::ProcessName),
        written: written_conditions(selector),
    }
}

/// The selector's conditions as a reader would write them, for `inspect`.
fn written_conditions(selector: &SelectorModel) -> Vec<String> {
    selector
        .conditions
        .iter()
        .map(|(key, values)| {
            let list = |items: Vec<String>| format!("{}: [{}]", key.key(), items.join(", "));
            match values {
                Values::Operations(ops) => list(ops.iter().map(|o| o.name().to_string()).collect()),
                Values::Text(t) => list(t.iter().map(ToString::to_string).collect()),
                Values::Labels(l) => list(l.iter().map(ToString::to_string).collect()),
                Values::Paths(p) => list(p.iter().map(ToString::to_string).collect()),
                Values::Flag(b) => format!("{}: {b}", key.key()),
                Values::Addresses(a) => list(a.iter().map(ToString::to_string).collect()),
                Values::Ports(p) => list(p.iter().map(ToString::to_string).collect()),
                Values::Transports(t) => list(t.iter().map(|t| t.name().to_string()).collect()),
            }
        })
        .collect()
}

/// Interns keys to dense ids, remembering a representative for each.
struct Interner<K, R> {
    ids: FxHashMap<K, u32>,
    reps: Vec<R>,
}

impl<K: std::hash::Hash + Eq, R> Interner<K, R> {
    fn new() -> Self {
        Interner { ids: FxHashMap::default(), reps: Vec::new() }
    }

    fn intern(&mut self, key: K, rep: impl FnOnce() -> R) -> u32 {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = count(self.reps.len());
        self.reps.push(rep());
        self.ids.insert(key, id);
        id
    }
}

/// File dynamic classes: `(path class, op, volume) -> class`.
fn file_class_table(meta: &KindMeta, path_classes: &[Vec<u32>], subtree: &[bool]) -> (Vec<u32>, Vec<[u32; 3]>) {
    let selectors = &meta.selectors;
    // Selectors without a path condition that hold, per (op, volume).
    let mut groups: Interner<Vec<u32>, ()> = Interner::new();
    let mut group_of = [[0u32; VOLUMES]; FILE_OPS];
    for (op, row) in group_of.iter_mut().enumerate() {
        for (volume, slot) in row.iter_mut().enumerate() {
            let set: Vec<u32> = (0u32..)
                .zip(selectors)
                .filter(|(_, s)| !s.dynamic.has_path && s.dynamic.holds(op, volume, false))
                .map(|(i, _)| i)
                .collect();
            *slot = groups.intern(set, || ());
        }
    }
    // A subtree class (a directory's events) holds for no selector without
    // a path condition: its group is the empty one.
    let none = groups.intern(Vec::new(), || ());
    let mut classes: Interner<(u32, Vec<u32>), [u32; 3]> = Interner::new();
    let mut table = Vec::with_capacity(path_classes.len() * FILE_OPS * VOLUMES);
    for ((p, on_path), &subtree) in (0u32..).zip(path_classes).zip(subtree) {
        for (op, row) in group_of.iter().enumerate() {
            for (volume, &group) in row.iter().enumerate() {
                let group = if subtree { none } else { group };
                let holding: Vec<u32> = on_path
                    .iter()
                    .copied()
                    .filter(|&s| selectors.get(s as usize).is_some_and(|s| s.dynamic.holds(op, volume, false)))
                    .collect();
                table.push(classes.intern((group, holding), || [p, count(op), count(volume)]));
            }
        }
    }
    (table, classes.reps)
}

type ProcessTables = (Vec<u32>, Vec<[u32; 3]>, Vec<u32>, Vec<[u32; 2]>);

/// Process classes: `(exe class, op, tty) -> a`, then `(a, name class) -> d`.
/// Fails with the number of intermediate classes when `a × names` entries
/// would not fit in `room`.
fn process_class_tables(
    meta: &KindMeta,
    exe_classes: &[Vec<u32>],
    name_classes: &[Vec<u32>],
    room: usize,
) -> Result<ProcessTables, usize> {
    let selectors = &meta.selectors;
    let holds = |s: u32, op: usize, tty: bool| selectors.get(s as usize).is_some_and(|s| s.dynamic.holds(op, 0, tty));
    // Selectors without `processExecutable` that hold, per (op, tty).
    let mut groups: Interner<Vec<u32>, ()> = Interner::new();
    let mut group_of = [[0u32; 2]; PROCESS_OPS];
    // The same without the selectors that have a `processName`.
    let mut nameless_groups: Interner<Vec<u32>, ()> = Interner::new();
    let mut nameless_group_of = [[0u32; 2]; PROCESS_OPS];
    let has_name = |s: &u32| selectors.get(*s as usize).is_some_and(|m| m.dynamic.has_name);
    for (op, row) in group_of.iter_mut().enumerate() {
        for (tty, slot) in row.iter_mut().enumerate() {
            let set: Vec<u32> = (0u32..)
                .zip(selectors)
                .filter(|(i, s)| !s.dynamic.has_path && holds(*i, op, tty == 1))
                .map(|(i, _)| i)
                .collect();
            let nameless: Vec<u32> = set.iter().copied().filter(|s| !has_name(s)).collect();
            if let Some(n) = nameless_group_of.get_mut(op).and_then(|row| row.get_mut(tty)) {
                *n = nameless_groups.intern(nameless, || ());
            }
            *slot = groups.intern(set, || ());
        }
    }
    let mut a_classes: Interner<(u32, Vec<u32>), [u32; 3]> = Interner::new();
    // The key of each intermediate class, by id (`on_exe` is sorted, so each
    // holding list is too).
    let mut a_keys: Vec<(u32, Vec<u32>)> = Vec::new();
    let mut a_table = Vec::with_capacity(exe_classes.len() * PROCESS_OPS * 2);
    for (e, on_exe) in (0u32..).zip(exe_classes) {
        for (op, row) in group_of.iter().enumerate() {
            for (tty, &group) in row.iter().enumerate() {
                let holding: Vec<u32> = on_exe.iter().copied().filter(|&s| holds(s, op, tty == 1)).collect();
                let before = a_classes.reps.len();
                let a = a_classes.intern((group, holding.clone()), || [e, count(op), count(tty)]);
                if a_classes.reps.len() > before {
                    a_keys.push((group, holding));
                }
                a_table.push(a);
            }
        }
    }
    let a_count = a_classes.reps.len();
    if a_count.saturating_mul(name_classes.len()) > room {
        return Err(a_count);
    }
    // An intermediate class fixes which selectors hold, except those with a
    // `processName`: its name-independent part is keyed by its group and
    // its holding executable selectors that have no name condition. Those
    // with a name hold when the name class lists them and they hold here:
    // with `processExecutable`, when among the holding ones; without, when
    // their operation and terminal conditions hold.
    let has = |s: u32, f: fn(&DynamicConditions) -> bool| selectors.get(s as usize).is_some_and(|m| f(&m.dynamic));
    let mut d_classes: Interner<(u32, Vec<u32>), [u32; 2]> = Interner::new();
    let mut nameless: Interner<(u32, Vec<u32>), ()> = Interner::new();
    let mut d_table = Vec::with_capacity(a_count * name_classes.len());
    for (a, ((_, holding), &[_, op, tty])) in (0u32..).zip(a_keys.iter().zip(&a_classes.reps)) {
        let unnamed: Vec<u32> = holding.iter().copied().filter(|s| !has_name(s)).collect();
        let group = nameless_group_of.get(op as usize).and_then(|row| row.get(tty as usize)).copied().unwrap_or(0);
        let fixed_id = nameless.intern((group, unnamed), || ());
        let member = |s: u32| {
            if has(s, |d| d.has_path) {
                holding.binary_search(&s).is_ok()
            } else {
                holds(s, op as usize, tty == 1)
            }
        };
        for (n, on_name) in (0u32..).zip(name_classes) {
            let named: Vec<u32> = on_name.iter().copied().filter(|s| has_name(s) && member(*s)).collect();
            d_table.push(d_classes.intern((fixed_id, named), || [a, n]));
        }
    }
    Ok((a_table, a_classes.reps, d_table, d_classes.reps))
}
