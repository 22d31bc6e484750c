//! Kernel records, decoded once into typed events.
//!
//! In: a ring buffer [`Record`] as the probes wrote it. Out: an [`Event`]:
//! a [`Decision`] (an operation decided by an LSM hook), or a lifecycle
//! event ([`Fork`], [`Exec`], [`ExecFailed`], [`Exit`], a setsid), or
//! [`Unknown`] for a record this build cannot read. The process cache
//! ([`crate::process`]), the in-flight decisions ([`crate::inflight`]) and
//! the documents ([`crate::ecs`]) read these, never the record.
//!
//! Invariants: this is the runtime's only reader of the probes' ABI
//! (`d4c_kernel_probes::abi`: record kinds, `LIFE_*`, `KIND_*`, `OP_*`,
//! `EV_*`, `HOOK_*`); decoding never fails and never drops a record: what
//! it cannot read becomes an [`Unknown`] that says why, and a hook code it
//! does not know becomes [`Hook::Unknown`]. Audit mode's decisions (made in
//! userspace when the BPF LSM is off) are [`Decision`]s too
//! ([`Decision::audit_of`]), made by the daemon from a lifecycle event.

use d4c_artifact::event::Volume;
use d4c_artifact::ops::{Actions, Kind, Operation};
use d4c_kernel_probes::abi::{
    self, EV_ARGS, EV_DENIED, EV_DIRECTORY, EV_FILELESS, EV_FIRST, EV_HAS_PATH, EV_INTERACTIVE, EV_OUTSIDE, EV_PENDING,
    EV_SECOND, EV_TRUNCATED, KIND_FILE, KIND_PROCESS, LIFE_EXEC, LIFE_EXEC_FAILED, LIFE_EXIT, LIFE_FORK, LIFE_SETSID,
    RECORD_DECISION, RECORD_LIFECYCLE, VOLUME_DIR, VOLUME_FILE, VOLUME_ROOTFS,
};
use d4c_kernel_probes::probes::Record;

/// The program that wrote a record: a hook of the probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `lsm/path_mknod`.
    PathMknod,
    /// `lsm/file_open`.
    FileOpen,
    /// `lsm/path_truncate`.
    PathTruncate,
    /// `lsm/path_chmod`.
    PathChmod,
    /// `lsm/path_link`.
    PathLink,
    /// `lsm/path_unlink`.
    PathUnlink,
    /// `lsm/path_rename`.
    PathRename,
    /// `lsm/path_symlink`.
    PathSymlink,
    /// `lsm/sb_mount`: `mount(2)`.
    SbMount,
    /// `lsm/move_mount`: `move_mount(2)`.
    MoveMount,
    /// `lsm/inode_set_acl`: an access ACL set (Linux 6.2 and later).
    InodeSetAcl,
    /// `lsm/inode_setxattr`: an access ACL set as an xattr (before 6.2).
    InodeSetxattr,
    /// `lsm/bprm_check_security`.
    BprmCheckSecurity,
    /// `lsm/task_alloc`.
    TaskAlloc,
    /// `tp_btf/sched_process_fork`.
    SchedProcessFork,
    /// `tp_btf/sched_process_exec`.
    SchedProcessExec,
    /// `tp_btf/sched_process_exit`.
    SchedProcessExit,
    /// `tracepoint/syscalls/sys_exit_setsid`.
    SysExitSetsid,
    /// `tracepoint/syscalls/sys_exit_execve`.
    SysExitExecve,
    /// `tracepoint/syscalls/sys_exit_execveat`.
    SysExitExecveat,
    /// A hook code this build does not know (probes newer than the
    /// runtime, or 0: probes older than the field). Its events are still
    /// reported; their `cloud_defend.hook_point` is left out.
    Unknown(u32),
}

impl Hook {
    /// The hook of the `D4C_HOOK_*` value `code`.
    pub fn from_code(code: u32) -> Hook {
        match code {
            abi::HOOK_PATH_MKNOD => Hook::PathMknod,
            abi::HOOK_FILE_OPEN => Hook::FileOpen,
            abi::HOOK_PATH_TRUNCATE => Hook::PathTruncate,
            abi::HOOK_PATH_CHMOD => Hook::PathChmod,
            abi::HOOK_PATH_LINK => Hook::PathLink,
            abi::HOOK_PATH_UNLINK => Hook::PathUnlink,
            abi::HOOK_PATH_RENAME => Hook::PathRename,
            abi::HOOK_PATH_SYMLINK => Hook::PathSymlink,
            abi::HOOK_SB_MOUNT => Hook::SbMount,
            abi::HOOK_MOVE_MOUNT => Hook::MoveMount,
            abi::HOOK_INODE_SET_ACL => Hook::InodeSetAcl,
            abi::HOOK_INODE_SETXATTR => Hook::InodeSetxattr,
            abi::HOOK_BPRM_CHECK_SECURITY => Hook::BprmCheckSecurity,
            abi::HOOK_TASK_ALLOC => Hook::TaskAlloc,
            abi::HOOK_SCHED_PROCESS_FORK => Hook::SchedProcessFork,
            abi::HOOK_SCHED_PROCESS_EXEC => Hook::SchedProcessExec,
            abi::HOOK_SCHED_PROCESS_EXIT => Hook::SchedProcessExit,
            abi::HOOK_SYS_EXIT_SETSID => Hook::SysExitSetsid,
            abi::HOOK_SYS_EXIT_EXECVE => Hook::SysExitExecve,
            abi::HOOK_SYS_EXIT_EXECVEAT => Hook::SysExitExecveat,
            other => Hook::Unknown(other),
        }
    }

    /// Its `D4C_HOOK_*` value.
    pub fn code(self) -> u32 {
        match self {
            Hook::PathMknod => abi::HOOK_PATH_MKNOD,
            Hook::FileOpen => abi::HOOK_FILE_OPEN,
            Hook::PathTruncate => abi::HOOK_PATH_TRUNCATE,
            Hook::PathChmod => abi::HOOK_PATH_CHMOD,
            Hook::PathLink => abi::HOOK_PATH_LINK,
            Hook::PathUnlink => abi::HOOK_PATH_UNLINK,
            Hook::PathRename => abi::HOOK_PATH_RENAME,
            Hook::PathSymlink => abi::HOOK_PATH_SYMLINK,
            Hook::SbMount => abi::HOOK_SB_MOUNT,
            Hook::MoveMount => abi::HOOK_MOVE_MOUNT,
            Hook::InodeSetAcl => abi::HOOK_INODE_SET_ACL,
            Hook::InodeSetxattr => abi::HOOK_INODE_SETXATTR,
            Hook::BprmCheckSecurity => abi::HOOK_BPRM_CHECK_SECURITY,
            Hook::TaskAlloc => abi::HOOK_TASK_ALLOC,
            Hook::SchedProcessFork => abi::HOOK_SCHED_PROCESS_FORK,
            Hook::SchedProcessExec => abi::HOOK_SCHED_PROCESS_EXEC,
            Hook::SchedProcessExit => abi::HOOK_SCHED_PROCESS_EXIT,
            Hook::SysExitSetsid => abi::HOOK_SYS_EXIT_SETSID,
            Hook::SysExitExecve => abi::HOOK_SYS_EXIT_EXECVE,
            Hook::SysExitExecveat => abi::HOOK_SYS_EXIT_EXECVEAT,
            Hook::Unknown(code) => code,
        }
    }

    /// Its name as `cloud_defend.hook_point` gives it (`lsm__file_open`,
    /// `tracepoint__sched_process_exec`, ...); `None` for an unknown hook.
    pub fn point(self) -> Option<&'static str> {
        match self {
            Hook::Unknown(_) => None,
            known => abi::hook_point(known.code()),
        }
    }
}

/// A name as the kernel keeps a comm: at most 15 bytes, held inline
/// (every record carries one or two; most are never written out).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    /// `text`'s first 15 bytes.
    pub fn new(text: &str) -> Comm {
        Comm::from_bytes(text.as_bytes())
    }

    fn from_bytes(bytes: &[u8]) -> Comm {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len()).min(15);
        let mut comm = Comm { bytes: [0; 16], len: end as u8 };
        comm.bytes.iter_mut().zip(bytes.get(..end).unwrap_or_default()).for_each(|(d, s)| *d = *s);
        comm
    }

    /// As text (lossy: a comm is bytes).
    pub fn text(&self) -> String {
        text(self.bytes.get(..usize::from(self.len)).unwrap_or_default())
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text())
    }
}

/// Who acted, and where and when the record was written: what every
/// record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The acting thread's id (in the initial pid namespace).
    pub pid: u32,
    /// Its process's id.
    pub tgid: u32,
    /// Its parent process's id.
    pub ppid: u32,
    /// Its real user id.
    pub uid: u32,
    /// Its real group id.
    pub gid: u32,
    /// Its effective user id as its user namespace sees it (what user
    /// conditions decide on); `abi::NO_UID` when the probes could not map it.
    pub euid: u32,
    /// Its session id (the leader's pid).
    pub sid: u32,
    /// Its cgroup's id.
    pub cgroup_id: u64,
    /// When, in nanoseconds since boot (`CLOCK_BOOTTIME`).
    pub ktime_ns: u64,
    /// Its comm, as the kernel had it.
    pub comm: Comm,
    /// Whether its session has a controlling terminal (said by the
    /// process hooks and the lifecycle records; the file hooks do not look).
    pub interactive: bool,
    /// Whether its container's metadata was pending.
    pub pending: bool,
    /// The program that wrote the record.
    pub hook: Hook,
}

/// Which of a syscall's events a decision is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The syscall's only event.
    Only,
    /// The first of several (a rename's old name, a fileless exec's
    /// `execMemFd`).
    First,
    /// One of the later ones.
    Later,
}

/// What a file event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// A file (`file.type` is left out, as the original does).
    File,
    /// A directory, whose event stands for everything in it
    /// (`file.type: dir`); the probes' directory events say so.
    Directory,
}

/// An operation an LSM hook decided (or audit mode did, in userspace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Who, where, when.
    pub task: Task,
    /// The operation.
    pub operation: Operation,
    /// The actions decided (`block` among them even when nothing was
    /// refused: the probes did not enforce).
    pub actions: Actions,
    /// The hook refused the operation.
    pub denied: bool,
    /// The path could not be resolved whole: the decision failed closed.
    pub truncated: bool,
    /// The path's walk ended at a root other than the task's: the file is
    /// not reachable from the container's root (`truncated` too).
    pub outside: bool,
    /// An exec of a file with no name (a memfd).
    pub fileless: bool,
    /// Which of its syscall's events this is.
    pub part: Part,
    /// A file or a directory.
    pub file_type: FileType,
    /// Where the file is.
    pub volume: Volume,
    /// The file's path; a process operation's executable (`memfd:NAME` for
    /// a fileless exec); empty when the record has none (`execMemFd`).
    pub path: String,
    /// The process name: an exec's, the one exec gives (the basename of
    /// the name exec was given, cut to 15 bytes); else the comm.
    pub name: Comm,
    /// An exec's arguments as its caller passed them, when the probes read
    /// them.
    pub args: Option<Args>,
    /// A file's mode (type and permission bits), when known.
    pub mode: Option<u32>,
    /// The decision's dynamic class and the container's row: what the
    /// matched selectors are explained from.
    pub dyn_class: u32,
    /// The container's row.
    pub row: u32,
    /// Made in userspace (audit mode: no LSM decided), from a lifecycle
    /// event that had happened already.
    pub audit: bool,
}

impl Decision {
    /// Audit mode's decision (no BPF LSM: made in userspace, nothing
    /// refused) of a fork or an exec that happened, by `task`, of the
    /// program at `path` named `name` and called with `args`: what a
    /// kernel record of the same operation would decode to, with no
    /// dynamic class or row (the daemon explains its matched selectors
    /// itself).
    pub fn audit_of(
        task: Task,
        operation: Operation,
        actions: Actions,
        path: String,
        name: Comm,
        args: Option<Args>,
    ) -> Decision {
        Decision {
            task,
            operation,
            actions,
            denied: false,
            truncated: false,
            outside: false,
            fileless: false,
            part: Part::Only,
            file_type: FileType::File,
            volume: Volume::RootFs,
            path,
            name,
            args,
            mode: None,
            dyn_class: 0,
            row: 0,
            audit: true,
        }
    }

    /// The operation's kind.
    pub fn kind(&self) -> Kind {
        self.operation.kind()
    }

    /// Whether it decides an exec (`exec`, or the `execMemFd` of a fileless
    /// exec): its outcome is the exec's.
    pub fn is_exec(&self) -> bool {
        matches!(self.operation, Operation::Exec | Operation::ExecMemFd)
    }

    /// Whether it decides a fork.
    pub fn is_fork(&self) -> bool {
        self.operation == Operation::Fork
    }
}

/// An exec's arguments as a record carries them: NUL-separated bytes,
/// split only when a document needs them (most decisions' documents
/// describe the program the exec record brings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args(Vec<u8>);

impl Args {
    /// The arguments of `argv` (for tests and audit mode).
    pub fn new<S: AsRef<str>>(argv: &[S]) -> Args {
        Args(argv.iter().flat_map(|a| a.as_ref().bytes().chain([0])).collect())
    }

    /// As text, `argv[0]` first (lossy); the last one's NUL may be
    /// missing (cut).
    pub fn to_vec(&self) -> Vec<String> {
        split_args(&self.0)
    }
}

/// A process forked (the forker's record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// The forking thread.
    pub task: Task,
    /// The new process's id.
    pub child: u32,
}

/// A process exec'd: it runs the new program now (its record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// The process, running the new program.
    pub task: Task,
    /// The new program's executable as the task sees it, or, when it is
    /// not reachable from the task's root (`resolved` false), the name
    /// exec was given (a memfd's: `memfd:NAME`).
    pub executable: String,
    /// Whether `executable` is the file's resolved path.
    pub resolved: bool,
    /// The comm exec gave.
    pub name: Comm,
    /// The new program's arguments, `argv[0]` first, when the probes read
    /// them (else `/proc` is asked).
    pub args: Option<Vec<String>>,
}

/// An exec that a decision reported as allowed did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecFailed {
    /// The process that called exec.
    pub task: Task,
    /// The errno exec returned.
    pub errno: i32,
}

/// A process ended (its leader thread's exit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The process.
    pub task: Task,
    /// Its exit code: the code, or 128 + the signal that killed it.
    pub code: i32,
}

/// A record this build cannot read, and why: counted and logged, never
/// silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// Who, where, when.
    pub task: Task,
    /// What is wrong with it.
    pub reason: String,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An operation decided.
    Decision(Decision),
    /// A process forked.
    Fork(Fork),
    /// A process exec'd.
    Exec(Exec),
    /// An allowed exec failed.
    ExecFailed(ExecFailed),
    /// A process ended.
    Exit(Exit),
    /// A process began a session (`setsid`).
    Setsid(Task),
    /// A record this build cannot read.
    Unknown(Unknown),
}

impl Event {
    /// Who, where, when.
    pub fn task(&self) -> &Task {
        match self {
            Event::Decision(d) => &d.task,
            Event::Fork(f) => &f.task,
            Event::Exec(e) => &e.task,
            Event::ExecFailed(e) => &e.task,
            Event::Exit(e) => &e.task,
            Event::Setsid(t) => t,
            Event::Unknown(u) => &u.task,
        }
    }

    /// A short name, for counters: `decision`, `fork`, `exec`,
    /// `exec_failed`, `exit`, `setsid`, `unknown`.
    pub fn label(&self) -> &'static str {
        match self {
            Event::Decision(_) => "decision",
            Event::Fork(_) => "fork",
            Event::Exec(_) => "exec",
            Event::ExecFailed(_) => "exec_failed",
            Event::Exit(_) => "exit",
            Event::Setsid(_) => "setsid",
            Event::Unknown(_) => "unknown",
        }
    }
}

/// Decodes a record.
pub fn decode(record: &Record) -> Event {
    let head = &record.head;
    let task = task(record);
    match head.record {
        RECORD_DECISION => decision(record, task),
        RECORD_LIFECYCLE => match head.op {
            LIFE_FORK => Event::Fork(Fork { task, child: head.child_tgid }),
            LIFE_EXEC => Event::Exec(Exec {
                executable: text(&record.path),
                resolved: head.flags & (EV_TRUNCATED | EV_OUTSIDE) == 0,
                name: name(&record.head.name, head.name_len),
                args: (head.flags & EV_ARGS != 0).then(|| split_args(&record.args)),
                task,
            }),
            LIFE_EXEC_FAILED => {
                Event::ExecFailed(ExecFailed { task, errno: i32::try_from(head.child_tgid).unwrap_or(i32::MAX) })
            }
            LIFE_EXIT => Event::Exit(Exit { task, code: exit_code(head.child_tgid) }),
            LIFE_SETSID => Event::Setsid(task),
            op => Event::Unknown(Unknown { task, reason: format!("a lifecycle record of unknown op {op}") }),
        },
        kind => Event::Unknown(Unknown { task, reason: format!("a record of unknown kind {kind}") }),
    }
}

fn task(record: &Record) -> Task {
    let head = &record.head;
    Task {
        pid: head.pid,
        tgid: head.tgid,
        ppid: head.ppid,
        uid: head.uid,
        euid: head.euid,
        gid: head.gid,
        sid: head.sid,
        cgroup_id: head.cgroup_id,
        ktime_ns: head.ktime_ns,
        comm: Comm::from_bytes(&head.comm),
        interactive: head.flags & EV_INTERACTIVE != 0,
        pending: head.flags & EV_PENDING != 0,
        hook: Hook::from_code(head.hook),
    }
}

fn decision(record: &Record, task: Task) -> Event {
    let head = &record.head;
    let kind = match head.kind {
        KIND_FILE => Kind::File,
        KIND_PROCESS => Kind::Process,
        other => return Event::Unknown(Unknown { task, reason: format!("a decision of unknown kind {other}") }),
    };
    let Some(operation) = usize::try_from(head.op).ok().and_then(|op| Operation::of_kind(kind).get(op).copied()) else {
        return Event::Unknown(Unknown {
            task,
            reason: format!("a {} decision of unknown op {}", kind.as_str(), head.op),
        });
    };
    let volume = match head.volume {
        VOLUME_ROOTFS => Volume::RootFs,
        VOLUME_DIR => Volume::Volume,
        VOLUME_FILE => Volume::VolumeFile,
        other => return Event::Unknown(Unknown { task, reason: format!("a decision on unknown volume {other}") }),
    };
    let part = match (head.flags & EV_FIRST != 0, head.flags & EV_SECOND != 0) {
        (true, _) => Part::First,
        (false, true) => Part::Later,
        (false, false) => Part::Only,
    };
    Event::Decision(Decision {
        operation,
        actions: Actions::from_bits(u8::try_from(head.actions & 7).unwrap_or(0)),
        denied: head.flags & EV_DENIED != 0,
        truncated: head.flags & EV_TRUNCATED != 0,
        outside: head.flags & EV_OUTSIDE != 0,
        fileless: head.flags & EV_FILELESS != 0,
        part,
        file_type: if head.flags & EV_DIRECTORY != 0 { FileType::Directory } else { FileType::File },
        volume,
        path: if head.flags & EV_HAS_PATH != 0 { text(&record.path) } else { String::new() },
        name: name(&head.name, head.name_len),
        args: (head.flags & EV_ARGS != 0).then(|| Args(record.args.clone())),
        mode: (head.mode != 0).then_some(head.mode),
        dyn_class: head.dyn_class,
        row: head.row,
        audit: false,
        task,
    })
}

/// Bytes as text (lossy: paths and arguments are bytes).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A NUL-padded name, at most `len` bytes of it.
fn name(bytes: &[u8], len: u32) -> Comm {
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(bytes.len());
    Comm::from_bytes(bytes.get(..len).unwrap_or_default())
}

/// NUL-separated arguments, `argv[0]` first, the last one's NUL missing
/// when they were cut.
fn split_args(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|&b| b == 0).map(text).collect()
}

/// A wait status as an exit code: the code, or 128 + the signal.
fn exit_code(status: u32) -> i32 {
    let signal = status & 0x7f;
    if signal == 0 {
        ((status >> 8) & 0xff) as i32
    } else {
        128 + signal as i32
    }
}

/// Records made as the probes make them, for tests and benchmarks (the
/// encoding side of [`decode`]): each takes the acting process's id.
pub mod encode {
    use super::*;
    use d4c_kernel_probes::abi::{EventRecord, NAME_BYTES};
    use zerocopy::FromZeros;

    /// A record of `record` kind and `op` by process `tgid` (thread
    /// `tgid`, parent 1, session 1, cgroup 9, at 5 s since boot).
    pub fn head(record: u32, op: u32, tgid: u32) -> EventRecord {
        let mut head = EventRecord::new_zeroed();
        (head.record, head.op, head.pid, head.tgid, head.ppid, head.sid, head.cgroup_id) =
            (record, op, tgid, tgid, 1, 1, 9);
        head.ktime_ns = 5_000_000_000;
        head
    }

    fn put_name(slot: &mut [u8; NAME_BYTES], name: &str) -> u32 {
        let bytes = name.as_bytes();
        let n = bytes.len().min(NAME_BYTES - 1);
        slot.iter_mut().zip(bytes.get(..n).unwrap_or_default()).for_each(|(s, b)| *s = *b);
        n as u32
    }

    fn put_args(record: &mut Record, args: Option<&[&str]>) {
        if let Some(args) = args {
            record.head.flags |= EV_ARGS;
            record.args = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
            record.head.args_len = record.args.len() as u32;
        }
    }

    /// A decision of `operation` by `hook` at `path`, with `actions`.
    pub fn decision(tgid: u32, hook: u32, operation: Operation, path: &str, actions: Actions) -> Record {
        let mut head = head(RECORD_DECISION, operation.table_index() as u32, tgid);
        head.kind = if operation.kind() == Kind::File { KIND_FILE } else { KIND_PROCESS };
        head.hook = hook;
        head.actions = u32::from(actions.bits());
        head.flags = EV_HAS_PATH;
        head.path_len = path.len() as u32;
        Record { head, path: path.as_bytes().to_vec(), args: Vec::new() }
    }

    /// An exec decision (`bprm_check_security`) of `executable`, named
    /// `name`, called with `args`.
    pub fn exec_decision(tgid: u32, executable: &str, name: &str, args: &[&str], actions: Actions) -> Record {
        let mut record = decision(tgid, abi::HOOK_BPRM_CHECK_SECURITY, Operation::Exec, executable, actions);
        record.head.name_len = put_name(&mut record.head.name, name);
        put_args(&mut record, Some(args));
        record
    }

    /// An exec lifecycle record: `executable` (resolved), `name`, `args`.
    pub fn exec(tgid: u32, executable: &str, name: &str, args: Option<&[&str]>) -> Record {
        let mut head = head(RECORD_LIFECYCLE, LIFE_EXEC, tgid);
        head.hook = abi::HOOK_SCHED_PROCESS_EXEC;
        head.flags = EV_HAS_PATH;
        head.path_len = executable.len() as u32;
        head.name_len = put_name(&mut head.name, name);
        let mut record = Record { head, path: executable.as_bytes().to_vec(), args: Vec::new() };
        put_args(&mut record, args);
        record
    }

    /// A lifecycle record `op` (`LIFE_FORK`: `value` is the child;
    /// `LIFE_EXIT`: the wait status; `LIFE_EXEC_FAILED`: the errno).
    pub fn lifecycle(tgid: u32, op: u32, value: u32) -> Record {
        let mut head = head(RECORD_LIFECYCLE, op, tgid);
        head.hook = match op {
            LIFE_FORK => abi::HOOK_SCHED_PROCESS_FORK,
            LIFE_EXIT => abi::HOOK_SCHED_PROCESS_EXIT,
            LIFE_SETSID => abi::HOOK_SYS_EXIT_SETSID,
            LIFE_EXEC_FAILED => abi::HOOK_SYS_EXIT_EXECVE,
            _ => abi::HOOK_SCHED_PROCESS_EXEC,
        };
        head.child_tgid = value;
        Record { head, path: Vec::new(), args: Vec::new() }
    }

    /// The lifecycle op codes, for callers that name them.
    pub const FORK: u32 = LIFE_FORK;
    /// `LIFE_EXIT`.
    pub const EXIT: u32 = LIFE_EXIT;
    /// `LIFE_SETSID`.
    pub const SETSID: u32 = LIFE_SETSID;
    /// `LIFE_EXEC_FAILED`.
    pub const EXEC_FAILED: u32 = LIFE_EXEC_FAILED;
    /// Flags a record may carry: the session has a terminal.
    pub const INTERACTIVE: u32 = EV_INTERACTIVE;
    /// The hook refused the operation.
    pub const DENIED: u32 = EV_DENIED;
    /// The path is not the file's whole one.
    pub const TRUNCATED: u32 = EV_TRUNCATED;
    /// A fileless exec.
    pub const FILELESS: u32 = EV_FILELESS;
    /// The first of a syscall's events.
    pub const FIRST: u32 = EV_FIRST;
    /// A later one.
    pub const SECOND: u32 = EV_SECOND;
    /// The path's walk ended outside the task's root.
    pub const OUTSIDE: u32 = EV_OUTSIDE;
    /// The event is on a directory, for everything in it.
    pub const DIRECTORY: u32 = EV_DIRECTORY;
    /// The hooks' codes, by name.
    pub use d4c_kernel_probes::abi::{
        HOOK_BPRM_CHECK_SECURITY, HOOK_FILE_OPEN, HOOK_INODE_SETXATTR, HOOK_INODE_SET_ACL, HOOK_MOVE_MOUNT,
        HOOK_PATH_CHMOD, HOOK_PATH_LINK, HOOK_PATH_MKNOD, HOOK_PATH_RENAME, HOOK_PATH_SYMLINK, HOOK_PATH_TRUNCATE,
        HOOK_PATH_UNLINK, HOOK_SB_MOUNT, HOOK_TASK_ALLOC,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_hook_decodes_to_itself_and_unknown_ones_are_explicit() {
        for (code, point) in abi::HOOK_POINTS {
            let hook = Hook::from_code(code);
            assert!(!matches!(hook, Hook::Unknown(_)), "{code}");
            assert_eq!((hook.code(), hook.point()), (code, Some(point)));
        }
        // Codes this build does not know: 0 (older probes), those of
        // hooks added since (newer probes), anything.
        let newest = abi::HOOK_POINTS.iter().map(|(code, _)| *code).max().unwrap_or(0);
        for code in [0, newest + 1, newest + 7, u32::MAX] {
            assert_eq!(Hook::from_code(code), Hook::Unknown(code));
            assert_eq!(Hook::Unknown(code).point(), None);
        }
    }

    #[test]
    fn an_unknown_hooks_decision_is_still_a_decision() {
        let mut record = encode::decision(7, 9_999, Operation::CreateFile, "/mnt/x", Actions::LOG);
        record.head.flags |= EV_FIRST;
        let Event::Decision(d) = decode(&record) else { panic!("not a decision") };
        assert_eq!(d.task.hook, Hook::Unknown(9_999));
        assert_eq!((d.operation, d.path.as_str(), d.part), (Operation::CreateFile, "/mnt/x", Part::First));
    }

    #[test]
    fn directory_and_outside_flags_decode_to_the_decision() {
        let mut record = encode::decision(7, abi::HOOK_SB_MOUNT, Operation::CreateExecutable, "/mnt", Actions::LOG);
        record.head.flags |= EV_DIRECTORY | EV_FIRST;
        let Event::Decision(d) = decode(&record) else { panic!("not a decision") };
        assert_eq!(
            (d.file_type, d.outside, d.truncated, d.task.hook),
            (FileType::Directory, false, false, Hook::SbMount)
        );
        let mut record = encode::decision(7, abi::HOOK_INODE_SET_ACL, Operation::ModifyFile, "/x", Actions::LOG);
        record.head.flags |= EV_OUTSIDE | EV_TRUNCATED;
        let Event::Decision(d) = decode(&record) else { panic!("not a decision") };
        assert_eq!((d.file_type, d.outside, d.truncated), (FileType::File, true, true));
        // An exec record whose executable the walk found outside the
        // task's root carries the name exec was given.
        let mut record = encode::exec(10, "/proc/self/exe", "runc:[2:INIT]", None);
        record.head.flags |= EV_OUTSIDE | EV_TRUNCATED;
        let Event::Exec(exec) = decode(&record) else { panic!("not an exec") };
        assert!(!exec.resolved);
    }

    #[test]
    fn records_this_build_cannot_read_say_why() {
        let mut record = encode::lifecycle(7, 9, 0);
        assert!(matches!(decode(&record), Event::Unknown(u) if u.reason.contains("op 9")));
        record.head.record = 3;
        assert!(matches!(decode(&record), Event::Unknown(u) if u.reason.contains("kind 3")));
        let mut record = encode::decision(7, abi::HOOK_FILE_OPEN, Operation::ModifyFile, "/x", Actions::LOG);
        record.head.op = 6;
        assert!(matches!(decode(&record), Event::Unknown(u) if u.reason.contains("op 6")));
        record.head.op = 3;
        record.head.volume = 3;
        assert!(matches!(decode(&record), Event::Unknown(u) if u.reason.contains("volume 3")));
        record.head.volume = 0;
        record.head.kind = 2;
        assert!(matches!(decode(&record), Event::Unknown(u) if u.reason.contains("kind 2")));
    }

    #[test]
    fn exec_records_decode_to_the_new_program_and_decisions_to_the_called_one() {
        let record = encode::exec(10, "/usr/bin/nsenter", "nsenter", Some(&["nsenter", "--target", "1"]));
        let Event::Exec(exec) = decode(&record) else { panic!("not an exec") };
        assert_eq!(
            (exec.executable.as_str(), exec.name.text().as_str(), exec.resolved),
            ("/usr/bin/nsenter", "nsenter", true)
        );
        assert_eq!(exec.args, Some(vec!["nsenter".to_string(), "--target".into(), "1".into()]));
        assert_eq!(exec.task.hook, Hook::SchedProcessExec);
        let mut record = encode::exec(10, "/proc/self/exe", "runc:[2:INIT]", None);
        record.head.flags |= EV_TRUNCATED;
        let Event::Exec(exec) = decode(&record) else { panic!("not an exec") };
        assert!(!exec.resolved && exec.args.is_none());
        let record = encode::exec_decision(10, "/usr/bin/nsenter", "nsenter", &["nsenter", "-t", "1"], Actions::LOG);
        let Event::Decision(d) = decode(&record) else { panic!("not a decision") };
        assert!(d.is_exec() && !d.is_fork() && d.kind() == Kind::Process);
        assert_eq!(d.args.map(|a| a.to_vec()), Some(vec!["nsenter".to_string(), "-t".into(), "1".into()]));
        // Cut arguments: the last one has no NUL.
        let mut cut = record;
        cut.args.pop();
        let Event::Decision(d) = decode(&cut) else { panic!("not a decision") };
        assert_eq!(d.args.map(|a| a.to_vec()).and_then(|a| a.last().cloned()).as_deref(), Some("1"));
        assert_eq!(Comm::new("a-name-longer-than-15").text(), "a-name-longer-t");
    }

    #[test]
    fn lifecycle_records_decode_with_their_values() {
        assert!(matches!(decode(&encode::lifecycle(7, LIFE_FORK, 8)), Event::Fork(Fork { child: 8, .. })));
        assert!(matches!(decode(&encode::lifecycle(7, LIFE_EXIT, 3 << 8)), Event::Exit(Exit { code: 3, .. })));
        assert!(matches!(decode(&encode::lifecycle(7, LIFE_EXIT, 9)), Event::Exit(Exit { code: 137, .. })));
        assert!(matches!(
            decode(&encode::lifecycle(7, LIFE_EXEC_FAILED, 8)),
            Event::ExecFailed(ExecFailed { errno: 8, .. })
        ));
        assert!(matches!(decode(&encode::lifecycle(7, LIFE_SETSID, 0)), Event::Setsid(_)));
    }
}
