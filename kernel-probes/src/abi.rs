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
    PROCESS_OPS, SHORT_COMPONENT_BYTES, STATE_HAS_EDGES, STATE_SETTLED, VOLUMES,
};

/// The longest path the kernel walks whole (`D4C_PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Bytes of a process name (`D4C_NAME_BYTES`, the kernel's `TASK_COMM_LEN`).
pub const NAME_BYTES: usize = 16;
/// `D4C_ARGS_MAX`: a record carries at most `ARGS_MAX - 1` bytes of an
/// exec's arguments.
pub const ARGS_MAX: usize = 4096;
/// `D4C_ARGS_COUNT`: arguments read from an exec caller's `argv`, at most.
pub const ARGS_COUNT: usize = 64;
/// `D4C_KIND_FILE`.
pub const KIND_FILE: u32 = 0;
/// `D4C_KIND_PROCESS`.
pub const KIND_PROCESS: u32 = 1;
/// `D4C_EVENT_HAS_PATH`: the file event has a path.
pub const EVENT_HAS_PATH: u32 = 1;
/// `D4C_EVENT_DIRECTORY`: the file event is on a directory, decided by
/// the subtree class (everything at or below its path).
pub const EVENT_DIRECTORY: u32 = 2;
/// `D4C_RESULT_TRUNCATED`: the path was longer than [`PATH_MAX`]; only its
/// first [`PATH_MAX`] bytes were walked. Fail closed.
pub const RESULT_TRUNCATED: u32 = 1;
/// `D4C_RESULT_NO_ROW`: the container's row has no entry for the class.
pub const RESULT_NO_ROW: u32 = 2;
/// `D4C_RESULT_ERROR`: a lookup that cannot fail did.
pub const RESULT_ERROR: u32 = 4;
/// `D4C_RESULT_NAME_TRUNCATED`: the name was longer than [`NAME_BYTES`].
pub const RESULT_NAME_TRUNCATED: u32 = 8;

/// Operation table indices (`D4C_OP_*`), as
/// [`Operation::table_index`](d4c_artifact::ops::Operation::table_index).
pub const OP_CREATE_EXECUTABLE: u32 = 0;
/// `D4C_OP_MODIFY_EXECUTABLE`.
pub const OP_MODIFY_EXECUTABLE: u32 = 1;
/// `D4C_OP_CREATE_FILE`.
pub const OP_CREATE_FILE: u32 = 2;
/// `D4C_OP_MODIFY_FILE`.
pub const OP_MODIFY_FILE: u32 = 3;
/// `D4C_OP_DELETE_FILE`.
pub const OP_DELETE_FILE: u32 = 4;
/// `D4C_OP_EXEC_MEMFD`.
pub const OP_EXEC_MEMFD: u32 = 5;
/// `D4C_OP_FORK`.
pub const OP_FORK: u32 = 0;
/// `D4C_OP_EXEC`.
pub const OP_EXEC: u32 = 1;
/// Volume table indices (`D4C_VOLUME_*`), as
/// [`Volume::table_index`](d4c_artifact::event::Volume::table_index).
pub const VOLUME_ROOTFS: u32 = 0;
/// `D4C_VOLUME_DIR`.
pub const VOLUME_DIR: u32 = 1;
/// `D4C_VOLUME_FILE`.
pub const VOLUME_FILE: u32 = 2;
/// Action bits (`D4C_ACTION_*`), as [`Actions`](d4c_artifact::ops::Actions).
pub const ACTION_LOG: u32 = 1;
/// `D4C_ACTION_ALERT`.
pub const ACTION_ALERT: u32 = 2;
/// `D4C_ACTION_BLOCK`.
pub const ACTION_BLOCK: u32 = 4;
/// `D4C_ROW_PENDING`: the row of containers whose metadata is pending.
pub const ROW_PENDING: u32 = 4_294_967_294;
/// `D4C_DYN_ANY`: the dynamic class of a row's summary entry (the union of
/// its actions).
pub const DYN_ANY: u32 = 4_294_967_295;
/// `D4C_NO_UID`: the euid of a record whose uid the probes could not map
/// into the task's user namespace.
pub const NO_UID: u32 = 4_294_967_295;
/// `D4C_UID_EXTENTS`: the uid_map extents the probes read.
pub const UID_EXTENTS: u32 = 5;
/// `D4C_CGROUP_CONTAINER`: a registered cgroup is a container's.
pub const CGROUP_CONTAINER: u32 = 1;
/// `D4C_CGROUP_KUBEPODS`: a registered cgroup is a kubepods root.
pub const CGROUP_KUBEPODS: u32 = 2;
/// `D4C_CGROUP_DEPTH`: cgroup levels the probes look up, at most.
pub const CGROUP_DEPTH: u32 = 16;
/// `D4C_CGROUP_UNIFIED`: the probes read the cgroup v2 cgroup.
pub const CGROUP_UNIFIED: u32 = 0;
/// `D4C_CGROUP_LEGACY`: the probes read the cgroup v1 memory cgroup.
pub const CGROUP_LEGACY: u32 = 1;
/// `D4C_RECORD_DECISION`: a decided operation.
pub const RECORD_DECISION: u32 = 1;
/// `D4C_RECORD_LIFECYCLE`: a container process forked, exec'd, exited or
/// began a session.
pub const RECORD_LIFECYCLE: u32 = 2;
/// `D4C_HOOK_*`: the program that wrote a record ([`EventRecord::hook`]),
/// one per program of `probes.bpf.c`; 0 is none. `D4C_HOOK_PATH_MKNOD`.
pub const HOOK_PATH_MKNOD: u32 = 1;
/// `D4C_HOOK_FILE_OPEN`.
pub const HOOK_FILE_OPEN: u32 = 2;
/// `D4C_HOOK_PATH_TRUNCATE`.
pub const HOOK_PATH_TRUNCATE: u32 = 3;
/// `D4C_HOOK_PATH_CHMOD`.
pub const HOOK_PATH_CHMOD: u32 = 4;
/// `D4C_HOOK_PATH_LINK`.
pub const HOOK_PATH_LINK: u32 = 5;
/// `D4C_HOOK_PATH_UNLINK`.
pub const HOOK_PATH_UNLINK: u32 = 6;
/// `D4C_HOOK_PATH_RENAME`.
pub const HOOK_PATH_RENAME: u32 = 7;
/// `D4C_HOOK_BPRM_CHECK_SECURITY`.
pub const HOOK_BPRM_CHECK_SECURITY: u32 = 8;
/// `D4C_HOOK_TASK_ALLOC`.
pub const HOOK_TASK_ALLOC: u32 = 9;
/// `D4C_HOOK_SCHED_PROCESS_FORK`.
pub const HOOK_SCHED_PROCESS_FORK: u32 = 10;
/// `D4C_HOOK_SCHED_PROCESS_EXEC`.
pub const HOOK_SCHED_PROCESS_EXEC: u32 = 11;
/// `D4C_HOOK_SCHED_PROCESS_EXIT`.
pub const HOOK_SCHED_PROCESS_EXIT: u32 = 12;
/// `D4C_HOOK_SYS_EXIT_SETSID`.
pub const HOOK_SYS_EXIT_SETSID: u32 = 13;
/// `D4C_HOOK_PATH_SYMLINK`.
pub const HOOK_PATH_SYMLINK: u32 = 14;
/// `D4C_HOOK_SB_MOUNT`.
pub const HOOK_SB_MOUNT: u32 = 15;
/// `D4C_HOOK_MOVE_MOUNT`.
pub const HOOK_MOVE_MOUNT: u32 = 16;
/// `D4C_HOOK_INODE_SET_ACL` (Linux 6.2 and later).
pub const HOOK_INODE_SET_ACL: u32 = 17;
/// `D4C_HOOK_INODE_SETXATTR` (POSIX ACLs before Linux 6.2).
pub const HOOK_INODE_SETXATTR: u32 = 18;
/// `D4C_HOOK_SYS_EXIT_EXECVE`: an exec's failure, at `execve`'s return.
pub const HOOK_SYS_EXIT_EXECVE: u32 = 19;
/// `D4C_HOOK_SYS_EXIT_EXECVEAT`: an exec's failure, at `execveat`'s return.
pub const HOOK_SYS_EXIT_EXECVEAT: u32 = 20;

/// Every `HOOK_*` with the name the runtime reports in
/// `cloud_defend.hook_point`: the original's names. The exit is reported
/// as `tracepoint__sched_process_exit`, since ours is the
/// `sched_process_exit` tracepoint; the original's exit hook was a kprobe
/// on `taskstats_exit`, `kprobe__taskstats_exit`. In strictly increasing
/// value order (checked at compile time); values need not be contiguous.
pub const HOOK_POINTS: [(u32, &str); 20] = [
    (HOOK_PATH_MKNOD, "lsm__path_mknod"),
    (HOOK_FILE_OPEN, "lsm__file_open"),
    (HOOK_PATH_TRUNCATE, "lsm__path_truncate"),
    (HOOK_PATH_CHMOD, "lsm__path_chmod"),
    (HOOK_PATH_LINK, "lsm__path_link"),
    (HOOK_PATH_UNLINK, "lsm__path_unlink"),
    (HOOK_PATH_RENAME, "lsm__path_rename"),
    (HOOK_BPRM_CHECK_SECURITY, "lsm__bprm_check_security"),
    (HOOK_TASK_ALLOC, "lsm__task_alloc"),
    (HOOK_SCHED_PROCESS_FORK, "tracepoint__sched_process_fork"),
    (HOOK_SCHED_PROCESS_EXEC, "tracepoint__sched_process_exec"),
    (HOOK_SCHED_PROCESS_EXIT, "tracepoint__sched_process_exit"),
    (HOOK_SYS_EXIT_SETSID, "tracepoint__syscalls_sys_exit_setsid"),
    (HOOK_PATH_SYMLINK, "lsm__path_symlink"),
    (HOOK_SB_MOUNT, "lsm__sb_mount"),
    (HOOK_MOVE_MOUNT, "lsm__move_mount"),
    (HOOK_INODE_SET_ACL, "lsm__inode_set_acl"),
    (HOOK_INODE_SETXATTR, "lsm__inode_setxattr"),
    (HOOK_SYS_EXIT_EXECVE, "tracepoint__syscalls_sys_exit_execve"),
    (HOOK_SYS_EXIT_EXECVEAT, "tracepoint__syscalls_sys_exit_execveat"),
];

const _: () = {
    let mut rest: &[(u32, &str)] = &HOOK_POINTS;
    let mut last = 0;
    while let [(hook, _), tail @ ..] = rest {
        assert!(*hook > last, "HOOK_POINTS is in strictly increasing value order, from 1");
        last = *hook;
        rest = tail;
    }
};

/// The name `cloud_defend.hook_point` gives the hook `D4C_HOOK_*` value
/// `hook` ([`HOOK_POINTS`]); `None` for a value this build does not know.
pub fn hook_point(hook: u32) -> Option<&'static str> {
    HOOK_POINTS.binary_search_by_key(&hook, |(value, _)| *value).ok().and_then(|i| HOOK_POINTS.get(i)).map(|(_, n)| *n)
}

/// `D4C_LIFE_FORK`.
pub const LIFE_FORK: u32 = 0;
/// `D4C_LIFE_EXEC`.
pub const LIFE_EXEC: u32 = 1;
/// `D4C_LIFE_EXIT`.
pub const LIFE_EXIT: u32 = 2;
/// `D4C_LIFE_SETSID`.
pub const LIFE_SETSID: u32 = 3;
/// `D4C_LIFE_EXEC_FAILED`: an exec a decision record reported as allowed
/// did not happen; `child_tgid` holds the errno.
pub const LIFE_EXEC_FAILED: u32 = 4;
/// `D4C_EV_HAS_PATH`: the record has a path.
pub const EV_HAS_PATH: u32 = 1;
/// `D4C_EV_INTERACTIVE`: the session has a controlling terminal.
pub const EV_INTERACTIVE: u32 = 2;
/// `D4C_EV_PENDING`: the container's metadata was pending.
pub const EV_PENDING: u32 = 4;
/// `D4C_EV_DENIED`: the hook refused the operation.
pub const EV_DENIED: u32 = 8;
/// `D4C_EV_TRUNCATED`: the path could not be resolved whole. On an exec
/// lifecycle record: the executable's path could not be resolved from its
/// file (not reachable from the task's root, or too long), and the path is
/// the name exec was given (a memfd's: `memfd:NAME`).
pub const EV_TRUNCATED: u32 = 16;
/// `D4C_EV_FIRST`: the first of a syscall's several events.
pub const EV_FIRST: u32 = 32;
/// `D4C_EV_SECOND`: one of the later ones.
pub const EV_SECOND: u32 = 64;
/// `D4C_EV_FILELESS`: the exec of a file with no name (a memfd).
pub const EV_FILELESS: u32 = 128;
/// `D4C_EV_ARGS`: the record ends with an exec's arguments,
/// [`EventRecord::args_len`] bytes after the path, NUL-separated (an exec
/// lifecycle record's: the new program's; an exec decision's: those its
/// caller passed).
pub const EV_ARGS: u32 = 256;
/// `D4C_EV_OUTSIDE`: the path's walk ended at a root other than the
/// task's (the file is not reachable from the container's root).
pub const EV_OUTSIDE: u32 = 512;
/// `D4C_EV_DIRECTORY`: the event is on a directory, decided for
/// everything at or below its path.
pub const EV_DIRECTORY: u32 = 1024;
/// Counter indices (`D4C_COUNT_*`).
pub const COUNT_DECISIONS: u32 = 0;
/// `D4C_COUNT_DENIED`.
pub const COUNT_DENIED: u32 = 1;
/// `D4C_COUNT_EVENTS`.
pub const COUNT_EVENTS: u32 = 2;
/// `D4C_COUNT_DROPPED`: records lost to a full ring buffer.
pub const COUNT_DROPPED: u32 = 3;
/// `D4C_COUNT_TRUNCATED`.
pub const COUNT_TRUNCATED: u32 = 4;
/// `D4C_COUNT_PENDING`.
pub const COUNT_PENDING: u32 = 5;
/// `D4C_COUNT_ERRORS`.
pub const COUNT_ERRORS: u32 = 6;
/// `D4C_COUNT_INTERNAL`: opens the kernel made on a task's behalf under a
/// stacked file system (overlayfs), not decided.
pub const COUNT_INTERNAL: u32 = 7;
/// `D4C_COUNT_SETUP`: operations of a container runtime setting a
/// container up (runc init, before it execs the container's program), not
/// decided.
pub const COUNT_SETUP: u32 = 8;
/// `D4C_COUNTERS`: the counter array's length (room to grow).
pub const COUNTERS: u32 = 16;
/// The counters' names, by index (for metrics and reports).
pub const COUNTER_NAMES: [&str; 9] =
    ["decisions", "denied", "events", "dropped", "truncated", "pending", "errors", "internal", "setup"];

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
    ("D4C_STATE_SETTLED", STATE_SETTLED as u64),
    ("D4C_PATH_MAX", PATH_MAX as u64),
    ("D4C_NAME_BYTES", NAME_BYTES as u64),
    ("D4C_ARGS_MAX", ARGS_MAX as u64),
    ("D4C_ARGS_COUNT", ARGS_COUNT as u64),
    ("D4C_KIND_FILE", KIND_FILE as u64),
    ("D4C_KIND_PROCESS", KIND_PROCESS as u64),
    ("D4C_EVENT_HAS_PATH", EVENT_HAS_PATH as u64),
    ("D4C_EVENT_DIRECTORY", EVENT_DIRECTORY as u64),
    ("D4C_RESULT_TRUNCATED", RESULT_TRUNCATED as u64),
    ("D4C_RESULT_NO_ROW", RESULT_NO_ROW as u64),
    ("D4C_RESULT_ERROR", RESULT_ERROR as u64),
    ("D4C_RESULT_NAME_TRUNCATED", RESULT_NAME_TRUNCATED as u64),
    ("D4C_OP_CREATE_EXECUTABLE", OP_CREATE_EXECUTABLE as u64),
    ("D4C_OP_MODIFY_EXECUTABLE", OP_MODIFY_EXECUTABLE as u64),
    ("D4C_OP_CREATE_FILE", OP_CREATE_FILE as u64),
    ("D4C_OP_MODIFY_FILE", OP_MODIFY_FILE as u64),
    ("D4C_OP_DELETE_FILE", OP_DELETE_FILE as u64),
    ("D4C_OP_EXEC_MEMFD", OP_EXEC_MEMFD as u64),
    ("D4C_OP_FORK", OP_FORK as u64),
    ("D4C_OP_EXEC", OP_EXEC as u64),
    ("D4C_VOLUME_ROOTFS", VOLUME_ROOTFS as u64),
    ("D4C_VOLUME_DIR", VOLUME_DIR as u64),
    ("D4C_VOLUME_FILE", VOLUME_FILE as u64),
    ("D4C_ACTION_LOG", ACTION_LOG as u64),
    ("D4C_ACTION_ALERT", ACTION_ALERT as u64),
    ("D4C_ACTION_BLOCK", ACTION_BLOCK as u64),
    ("D4C_ROW_PENDING", ROW_PENDING as u64),
    ("D4C_DYN_ANY", DYN_ANY as u64),
    ("D4C_NO_UID", NO_UID as u64),
    ("D4C_UID_EXTENTS", UID_EXTENTS as u64),
    ("D4C_CGROUP_CONTAINER", CGROUP_CONTAINER as u64),
    ("D4C_CGROUP_KUBEPODS", CGROUP_KUBEPODS as u64),
    ("D4C_CGROUP_DEPTH", CGROUP_DEPTH as u64),
    ("D4C_CGROUP_UNIFIED", CGROUP_UNIFIED as u64),
    ("D4C_CGROUP_LEGACY", CGROUP_LEGACY as u64),
    ("D4C_RECORD_DECISION", RECORD_DECISION as u64),
    ("D4C_RECORD_LIFECYCLE", RECORD_LIFECYCLE as u64),
    ("D4C_HOOK_PATH_MKNOD", HOOK_PATH_MKNOD as u64),
    ("D4C_HOOK_FILE_OPEN", HOOK_FILE_OPEN as u64),
    ("D4C_HOOK_PATH_TRUNCATE", HOOK_PATH_TRUNCATE as u64),
    ("D4C_HOOK_PATH_CHMOD", HOOK_PATH_CHMOD as u64),
    ("D4C_HOOK_PATH_LINK", HOOK_PATH_LINK as u64),
    ("D4C_HOOK_PATH_UNLINK", HOOK_PATH_UNLINK as u64),
    ("D4C_HOOK_PATH_RENAME", HOOK_PATH_RENAME as u64),
    ("D4C_HOOK_BPRM_CHECK_SECURITY", HOOK_BPRM_CHECK_SECURITY as u64),
    ("D4C_HOOK_TASK_ALLOC", HOOK_TASK_ALLOC as u64),
    ("D4C_HOOK_SCHED_PROCESS_FORK", HOOK_SCHED_PROCESS_FORK as u64),
    ("D4C_HOOK_SCHED_PROCESS_EXEC", HOOK_SCHED_PROCESS_EXEC as u64),
    ("D4C_HOOK_SCHED_PROCESS_EXIT", HOOK_SCHED_PROCESS_EXIT as u64),
    ("D4C_HOOK_SYS_EXIT_SETSID", HOOK_SYS_EXIT_SETSID as u64),
    ("D4C_HOOK_PATH_SYMLINK", HOOK_PATH_SYMLINK as u64),
    ("D4C_HOOK_SB_MOUNT", HOOK_SB_MOUNT as u64),
    ("D4C_HOOK_MOVE_MOUNT", HOOK_MOVE_MOUNT as u64),
    ("D4C_HOOK_INODE_SET_ACL", HOOK_INODE_SET_ACL as u64),
    ("D4C_HOOK_INODE_SETXATTR", HOOK_INODE_SETXATTR as u64),
    ("D4C_HOOK_SYS_EXIT_EXECVE", HOOK_SYS_EXIT_EXECVE as u64),
    ("D4C_HOOK_SYS_EXIT_EXECVEAT", HOOK_SYS_EXIT_EXECVEAT as u64),
    ("D4C_LIFE_FORK", LIFE_FORK as u64),
    ("D4C_LIFE_EXEC", LIFE_EXEC as u64),
    ("D4C_LIFE_EXIT", LIFE_EXIT as u64),
    ("D4C_LIFE_SETSID", LIFE_SETSID as u64),
    ("D4C_LIFE_EXEC_FAILED", LIFE_EXEC_FAILED as u64),
    ("D4C_EV_HAS_PATH", EV_HAS_PATH as u64),
    ("D4C_EV_INTERACTIVE", EV_INTERACTIVE as u64),
    ("D4C_EV_PENDING", EV_PENDING as u64),
    ("D4C_EV_DENIED", EV_DENIED as u64),
    ("D4C_EV_TRUNCATED", EV_TRUNCATED as u64),
    ("D4C_EV_FIRST", EV_FIRST as u64),
    ("D4C_EV_SECOND", EV_SECOND as u64),
    ("D4C_EV_FILELESS", EV_FILELESS as u64),
    ("D4C_EV_ARGS", EV_ARGS as u64),
    ("D4C_EV_OUTSIDE", EV_OUTSIDE as u64),
    ("D4C_EV_DIRECTORY", EV_DIRECTORY as u64),
    ("D4C_COUNT_DECISIONS", COUNT_DECISIONS as u64),
    ("D4C_COUNT_DENIED", COUNT_DENIED as u64),
    ("D4C_COUNT_EVENTS", COUNT_EVENTS as u64),
    ("D4C_COUNT_DROPPED", COUNT_DROPPED as u64),
    ("D4C_COUNT_TRUNCATED", COUNT_TRUNCATED as u64),
    ("D4C_COUNT_PENDING", COUNT_PENDING as u64),
    ("D4C_COUNT_ERRORS", COUNT_ERRORS as u64),
    ("D4C_COUNT_INTERNAL", COUNT_INTERNAL as u64),
    ("D4C_COUNT_SETUP", COUNT_SETUP as u64),
    ("D4C_COUNTERS", COUNTERS as u64),
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
    /// [`EVENT_HAS_PATH`], [`EVENT_DIRECTORY`].
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

/// A registered cgroup (`struct d4c_cgroup`, the value of `d4c_cgroups`;
/// the key is the cgroup id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CgroupEntry {
    /// The container's row (when [`CGROUP_CONTAINER`]).
    pub row: u32,
    /// `CGROUP_*` bits.
    pub flags: u32,
}

/// The probes' settings (`struct d4c_config`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Config {
    /// 1: blocking responses refuse the operation; 0: report only.
    pub enforce: u32,
    /// [`CGROUP_UNIFIED`] or [`CGROUP_LEGACY`].
    pub cgroup_mode: u32,
    /// 1: the policy has user conditions: a container's row is followed
    /// by `d4c_user_rows` for the acting task's uid.
    pub user_rows: u32,
    /// Zero.
    pub reserved: u32,
}

/// `struct d4c_user_row_key`: a container's row and an effective uid (as
/// the task's user namespace sees it); the value is the row of that
/// container and user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct UserRowKey {
    /// The container's row.
    pub row: u32,
    /// The effective uid.
    pub uid: u32,
}

/// A ring buffer record (`struct d4c_event`): this fixed part, then
/// `path_len` bytes of path (at most [`PATH_MAX`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EventRecord {
    /// `RECORD_*`.
    pub record: u32,
    /// `KIND_*` (decisions).
    pub kind: u32,
    /// The operation's table index (decisions), or `LIFE_*`.
    pub op: u32,
    /// The volume's table index.
    pub volume: u32,
    /// `EV_*` bits.
    pub flags: u32,
    /// The actions decided (`ACTION_*` bits).
    pub actions: u32,
    /// The dynamic class.
    pub dyn_class: u32,
    /// `RESULT_*` bits.
    pub result_flags: u32,
    /// The container's row.
    pub row: u32,
    /// The acting thread's id.
    pub pid: u32,
    /// Its process id.
    pub tgid: u32,
    /// Its parent process id.
    pub ppid: u32,
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
    /// Its session id (the leader's pid).
    pub sid: u32,
    /// Fork: the new process's id; exit: the exit code.
    pub child_tgid: u32,
    /// Bytes of path; more than [`PATH_MAX`]: cut.
    pub path_len: u32,
    /// Bytes of `name`.
    pub name_len: u32,
    /// `HOOK_*`: the program that wrote the record.
    pub hook: u32,
    /// A file decision: the file's mode (type and permission bits; the new
    /// one for a creation or a chmod); 0 when unknown.
    pub mode: u32,
    /// The acting task's cgroup id.
    pub cgroup_id: u64,
    /// `bpf_ktime_get_boot_ns`.
    pub ktime_ns: u64,
    /// The acting task's comm, NUL padded.
    pub comm: [u8; NAME_BYTES],
    /// The event's process name (exec: the new one), NUL padded.
    pub name: [u8; NAME_BYTES],
    /// [`EV_ARGS`]: bytes of arguments at the record's end.
    pub args_len: u32,
    /// The acting task's effective uid as its user namespace sees it
    /// (what user conditions decide on); [`NO_UID`] when unmapped.
    pub euid: u32,
}

/// Bytes of [`EventRecord`]: where the path starts in a record.
pub const EVENT_RECORD_BYTES: usize = size_of::<EventRecord>();

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
                ("subtree_class", offset_of!(DfaState, subtree_class)),
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
            "d4c_user_row_key",
            size_of::<UserRowKey>(),
            vec![("row", offset_of!(UserRowKey, row)), ("uid", offset_of!(UserRowKey, uid))],
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
        (
            "d4c_cgroup",
            size_of::<CgroupEntry>(),
            vec![("row", offset_of!(CgroupEntry, row)), ("flags", offset_of!(CgroupEntry, flags))],
        ),
        (
            "d4c_config",
            size_of::<Config>(),
            vec![
                ("enforce", offset_of!(Config, enforce)),
                ("cgroup_mode", offset_of!(Config, cgroup_mode)),
                ("user_rows", offset_of!(Config, user_rows)),
                ("reserved", offset_of!(Config, reserved)),
            ],
        ),
        (
            "d4c_event",
            size_of::<EventRecord>() + PATH_MAX + ARGS_MAX,
            vec![
                ("record", offset_of!(EventRecord, record)),
                ("kind", offset_of!(EventRecord, kind)),
                ("op", offset_of!(EventRecord, op)),
                ("volume", offset_of!(EventRecord, volume)),
                ("flags", offset_of!(EventRecord, flags)),
                ("actions", offset_of!(EventRecord, actions)),
                ("dyn_class", offset_of!(EventRecord, dyn_class)),
                ("result_flags", offset_of!(EventRecord, result_flags)),
                ("row", offset_of!(EventRecord, row)),
                ("pid", offset_of!(EventRecord, pid)),
                ("tgid", offset_of!(EventRecord, tgid)),
                ("ppid", offset_of!(EventRecord, ppid)),
                ("uid", offset_of!(EventRecord, uid)),
                ("gid", offset_of!(EventRecord, gid)),
                ("sid", offset_of!(EventRecord, sid)),
                ("child_tgid", offset_of!(EventRecord, child_tgid)),
                ("path_len", offset_of!(EventRecord, path_len)),
                ("name_len", offset_of!(EventRecord, name_len)),
                ("hook", offset_of!(EventRecord, hook)),
                ("mode", offset_of!(EventRecord, mode)),
                ("cgroup_id", offset_of!(EventRecord, cgroup_id)),
                ("ktime_ns", offset_of!(EventRecord, ktime_ns)),
                ("comm", offset_of!(EventRecord, comm)),
                ("name", offset_of!(EventRecord, name)),
                ("args_len", offset_of!(EventRecord, args_len)),
                ("euid", offset_of!(EventRecord, euid)),
                ("path", size_of::<EventRecord>()),
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
    assert!(size_of::<UserRowKey>() == 8);
    assert!(size_of::<EventHead>() == 48);
    assert!(offset_of!(EventHead, name) == 32);
    assert!(size_of::<TestEvent>() == 48 + PATH_MAX);
    assert!(offset_of!(TestEvent, path) == 48);
    assert!(size_of::<DecisionResult>() == 32);
    assert!(offset_of!(DecisionResult, steps) == 24);
    assert!(size_of::<CgroupEntry>() == 8);
    assert!(size_of::<Config>() == 16);
    assert!(offset_of!(EventRecord, hook) == 72);
    assert!(offset_of!(EventRecord, cgroup_id) == 80);
    assert!(offset_of!(EventRecord, args_len) == 128);
    assert!(size_of::<EventRecord>() == 136);
};
