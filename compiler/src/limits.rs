//! Every limit d4c enforces, defined once.
//!
//! The front-end limits bound the time and memory one lint run may take on
//! hostile input. The policy limits are the capacity of the decision tables
//! the kernel evaluates; the compiler checks them so that nothing over a limit
//! is discovered later on a node. Each is reported with its figure
//! (`D4C0003`, `D4C0033`). The capacity limits also bound what `d4cc
//! compile` allocates: lowering is linear in a policy within them.

/// Largest policy file accepted, in bytes. A 10,000-selector policy is about
/// 1.5 MiB; 32 MiB leaves room for 100,000 path patterns.
pub const MAX_SOURCE_BYTES: usize = 32 * 1024 * 1024;

/// Deepest YAML nesting accepted. A policy needs four levels
/// (`file` > `selectors` > item > condition list).
pub const MAX_YAML_DEPTH: usize = 64;

/// Most YAML nodes one document may hold once aliases are expanded. This is
/// what defuses "billion laughs" alias bombs.
pub const MAX_YAML_NODES: usize = 1_000_000;

/// Selectors per type (file, process): one bit each in the decision tables.
pub const MAX_SELECTORS_PER_TYPE: usize = 16_384;

/// Responses per type (file, process).
pub const MAX_RESPONSES_PER_TYPE: usize = 16_384;

/// Path patterns (`targetFilePath` plus `processExecutable` values) in one
/// policy, counted after duplicates are removed.
pub const MAX_PATH_PATTERNS: usize = 65_536;

/// Distinct path prefixes, the nodes of the path automaton: `/a`, `/a/b`
/// and `/a/b/c` for `/a/b/c` (and for `/a/b/c/*` and `/a/b/c/**`), `/a/b/c*`
/// for `/a/b/c*`; `targetFilePath`, `processExecutable` and `processName`
/// values (each as `/<name>`) counted apart. Each prefix makes at most three
/// automaton states, so this keeps a policy within the tables' 4,194,304
/// states before lowering allocates any, and bounds what compiling costs:
/// with paths of deep, distinct directories the patterns stay within
/// [`MAX_PATH_PATTERNS`] and [`MAX_SOURCE_BYTES`] but their prefixes do not
/// (issue 14, fault 10). It is four times what 65,536 patterns of four
/// components each, none shared, have.
pub const MAX_PATH_PREFIXES: usize = 1_048_576;

/// Longest path pattern, in bytes: `PATH_MAX` (4096) less the NUL. This also
/// bounds depth: no path within it has more than 2,047 components.
pub const MAX_PATH_BYTES: usize = 4_095;

/// Longest path component, in bytes: `NAME_MAX`. The tables key components
/// by their bytes; a longer one names no file.
pub const MAX_COMPONENT_BYTES: usize = d4c_artifact::tables::LONG_COMPONENT_BYTES;

/// Distinct lengths of `prefix*` patterns in one directory (and of
/// `processName` prefixes): each is one more lookup per path component.
pub const MAX_PREFIX_LENS: usize = d4c_artifact::tables::MAX_PREFIX_LENS;

/// Longest non-path condition value (image names, labels, pod names ...), in
/// bytes. Kubernetes' own longest name is a 253-byte DNS subdomain plus a
/// 63-byte label name; this leaves room.
pub const MAX_VALUE_BYTES: usize = 1_024;

/// Longest `processName`: the kernel's `TASK_COMM_LEN` (16) less the NUL.
/// A longer name can never equal a task's comm.
pub const MAX_PROCESS_NAME_BYTES: usize = 15;

/// Longest selector name, in bytes (as in the original).
pub const MAX_SELECTOR_NAME_BYTES: usize = 128;
