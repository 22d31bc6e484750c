//! The decision tables in BPF maps: sizing the maps of an object before it
//! loads, filling them from [`Tables`], writing container rows. Shared by
//! the XDP harness and the probes: both objects include `decide.bpf.h`,
//! whose maps have the same names.
//!
//! Invariant: every map is sized from the tables it will hold (the C side
//! declares placeholder sizes), so a policy never overflows a map.

use crate::abi::{RowKey, UserRowKey, DYN_ANY, KIND_FILE, KIND_PROCESS};
use aya::maps::{Array, HashMap, Map, MapData};
use aya::{Ebpf, EbpfLoader};
use d4c_artifact::eval::{component_records, Tables};
use d4c_artifact::ops::{Actions, Kind};
use d4c_artifact::tables::{ComponentKeyLong, ComponentKeyShort, DfaState, EdgeKey, Roots, SHORT_COMPONENT_BYTES};
use zerocopy::IntoBytes;

/// A map operation that failed, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError(pub String);

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MapError {}

/// `context: e: its source: ...`, with a hint when the kernel refused for
/// want of privilege. aya's errors keep the cause (a relocation's, the
/// verifier's log) in their sources.
pub fn error(context: &str, e: impl std::error::Error) -> MapError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let hint = if text.contains("Operation not permitted") || text.contains("EPERM") || text.contains("os error 1)") {
        " (the bpf() system call was refused: this needs root, or CAP_BPF and CAP_PERFMON)"
    } else {
        ""
    };
    MapError(format!("{context}: {text}{hint}"))
}

/// A map's entry count: at least 1 (the kernel refuses empty maps).
pub fn entries(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// Rows the probes hold for `containers` container classes: each class
/// has one entry per dynamic class of each kind, plus a summary entry per
/// kind; the pending row is one more class.
pub fn row_entries(tables: &Tables, containers: usize) -> usize {
    let per_row = tables.roots.file_dyn_classes as usize + tables.roots.process_dyn_classes as usize + 2;
    per_row.saturating_mul(containers.saturating_add(1))
}

/// Sizes the table maps of an object about to load, and `d4c_rows` for
/// `max_rows` entries.
pub fn size(loader: &mut EbpfLoader<'_>, tables: &Tables, max_rows: usize) {
    // component_records' split, counted without building the keys.
    let short = tables.components.iter().filter(|c| c.len() <= SHORT_COMPONENT_BYTES).count();
    let long = tables.components.len() - short;
    loader
        .set_max_entries("d4c_states", entries(tables.states.len()))
        .set_max_entries("d4c_comp_short", entries(short))
        .set_max_entries("d4c_comp_long", entries(long))
        .set_max_entries("d4c_edges", entries(tables.edges.len()))
        .set_max_entries("d4c_pedges", entries(tables.prefix_edges.len()))
        .set_max_entries("d4c_file_cls", entries(tables.file_classes.len()))
        .set_max_entries("d4c_proc_a", entries(tables.process_classes_a.len()))
        .set_max_entries("d4c_proc_d", entries(tables.process_classes_d.len()))
        .set_max_entries("d4c_rows", entries(max_rows));
}

fn map<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Map, MapError> {
    ebpf.map_mut(name).ok_or_else(|| MapError(format!("the object has no map `{name}`")))
}

fn fixed<const N: usize>(record: &[u8]) -> Result<[u8; N], MapError> {
    <[u8; N]>::try_from(record).map_err(|_| MapError(format!("a record of {} bytes, want {N}", record.len())))
}

/// Writes `records` (each `N` bytes) at indices 0.. of array map `name`.
pub fn array<const N: usize>(ebpf: &mut Ebpf, name: &str, records: &[u8]) -> Result<(), MapError> {
    let mut array: Array<&mut MapData, [u8; N]> = Array::try_from(map(ebpf, name)?).map_err(|e| error(name, e))?;
    for (i, record) in (0u32..).zip(records.chunks_exact(N)) {
        array.set(i, fixed::<N>(record)?, 0).map_err(|e| error(name, e))?;
    }
    Ok(())
}

/// Inserts `keys` (each `N` bytes) with `values` into hash map `name`.
pub fn hash<const N: usize>(ebpf: &mut Ebpf, name: &str, keys: &[u8], values: &[u32]) -> Result<(), MapError> {
    let mut hash: HashMap<&mut MapData, [u8; N], u32> =
        HashMap::try_from(map(ebpf, name)?).map_err(|e| error(name, e))?;
    for (key, value) in keys.chunks_exact(N).zip(values) {
        hash.insert(fixed::<N>(key)?, value, 0).map_err(|e| error(name, e))?;
    }
    Ok(())
}

/// Fills the table maps (everything but the rows) from `tables`.
pub fn fill(ebpf: &mut Ebpf, tables: &Tables) -> Result<(), MapError> {
    let (short_keys, short_ids, long_keys, long_ids) = component_records(&tables.components);
    // Each map's record size is its record type's: the artifact's layouts
    // (which the ABI header mirrors, checked by the harness tests).
    array::<{ size_of::<Roots>() }>(ebpf, "d4c_roots", tables.roots.as_bytes())?;
    array::<{ size_of::<DfaState>() }>(ebpf, "d4c_states", tables.states.as_bytes())?;
    hash::<{ size_of::<ComponentKeyShort>() }>(ebpf, "d4c_comp_short", short_keys.as_bytes(), &short_ids)?;
    hash::<{ size_of::<ComponentKeyLong>() }>(ebpf, "d4c_comp_long", long_keys.as_bytes(), &long_ids)?;
    let keys = |edges: &[(EdgeKey, u32)]| edges.iter().map(|(k, _)| *k).collect::<Vec<_>>();
    let values = |edges: &[(EdgeKey, u32)]| edges.iter().map(|(_, v)| *v).collect::<Vec<_>>();
    hash::<{ size_of::<EdgeKey>() }>(ebpf, "d4c_edges", keys(&tables.edges).as_bytes(), &values(&tables.edges))?;
    hash::<{ size_of::<EdgeKey>() }>(
        ebpf,
        "d4c_pedges",
        keys(&tables.prefix_edges).as_bytes(),
        &values(&tables.prefix_edges),
    )?;
    const CLASS: usize = size_of::<u32>();
    array::<CLASS>(ebpf, "d4c_file_cls", tables.file_classes.as_bytes())?;
    array::<CLASS>(ebpf, "d4c_proc_a", tables.process_classes_a.as_bytes())?;
    array::<CLASS>(ebpf, "d4c_proc_d", tables.process_classes_d.as_bytes())?;
    Ok(())
}

/// The kernel's code of `kind`; `None` for network events, which the
/// kernel does not decide yet (the compiler refuses network rules,
/// `D4C0044`).
pub fn kind_code(kind: Kind) -> Option<u32> {
    match kind {
        Kind::File => Some(KIND_FILE),
        Kind::Process => Some(KIND_PROCESS),
        Kind::Network => None,
    }
}

/// Writes the user rows of container row `row`: `(uid, user row)` pairs.
pub fn write_user_rows(ebpf: &mut Ebpf, row: u32, users: &[(u32, u32)]) -> Result<(), MapError> {
    if users.is_empty() {
        return Ok(());
    }
    let keys: Vec<UserRowKey> = users.iter().map(|&(uid, _)| UserRowKey { row, uid }).collect();
    let values: Vec<u32> = users.iter().map(|&(_, user_row)| user_row).collect();
    hash::<{ size_of::<UserRowKey>() }>(ebpf, "d4c_user_rows", keys.as_bytes(), &values)
}

/// Writes row `row` of `kind`: `actions[class]` for every dynamic class,
/// and the row's summary (the union of its actions) at [`DYN_ANY`].
pub fn write_row(ebpf: &mut Ebpf, row: u32, kind: Kind, actions: &[Actions]) -> Result<(), MapError> {
    let kind = kind_code(kind).ok_or_else(|| MapError(format!("the kernel has no {} rows", kind.as_str())))?;
    let summary = actions.iter().fold(Actions::NONE, |all, a| all.union(*a));
    let mut keys: Vec<RowKey> = (0u32..).zip(actions).map(|(dyn_class, _)| RowKey { row, kind, dyn_class }).collect();
    let mut values: Vec<u32> = actions.iter().map(|a| u32::from(a.bits())).collect();
    keys.push(RowKey { row, kind, dyn_class: DYN_ANY });
    values.push(u32::from(summary.bits()));
    hash::<{ size_of::<RowKey>() }>(ebpf, "d4c_rows", keys.as_bytes(), &values)
}
