//! Loading and running the probes (`src/probes.bpf.c`): the LSM hooks that
//! decide, the tracepoints that report, their tables, containers and
//! events. Used by the runtime and by the VM suite.
//!
//! In: a policy's [`Tables`], [`Settings`]; then containers (cgroup id →
//! the container's metadata). Out: attached programs, and [`Record`]s read
//! from the ring buffer, and counters.
//!
//! Invariants:
//! - the tables, the pending row and the settings are in the maps before
//!   any program is attached: no hook ever runs on empty maps;
//! - a container's row is written before its cgroup is registered, so a
//!   registered container always has its row;
//! - containers with equal container-condition verdicts share one row.
//!
//! Enforcement needs the BPF LSM active (`bpf` in
//! `/sys/kernel/security/lsm`): without it the LSM programs load and
//! attach without error but never run. [`bpf_lsm_active`] tells, and
//! [`Probes::attach`] refuses to enforce without it.

use crate::abi::{
    CgroupEntry, Config, EventRecord, CGROUP_CONTAINER, CGROUP_KUBEPODS, CGROUP_LEGACY, CGROUP_UNIFIED, COUNTERS,
    EVENT_RECORD_BYTES, EV_ARGS, KIND_FILE, KIND_PROCESS, RECORD_DECISION, ROW_PENDING,
};
use crate::maps::{self, error, MapError};
pub use crate::sys::ensure_bpffs;
use crate::PROBES_OBJECT;
use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{BtfTracePoint, Lsm, ProgramError, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use d4c_artifact::eval::Tables;
use d4c_artifact::event::{Container, User};
use d4c_artifact::ops::Kind;
use std::collections::BTreeSet;
use std::path::Path;
use zerocopy::FromBytes;

/// The LSM hooks, by program name and hook.
pub const LSM_PROGRAMS: &[(&str, &str)] = &[
    ("d4c_path_mknod", "path_mknod"),
    ("d4c_file_open", "file_open"),
    ("d4c_path_truncate", "path_truncate"),
    ("d4c_path_chmod", "path_chmod"),
    ("d4c_path_link", "path_link"),
    ("d4c_path_unlink", "path_unlink"),
    ("d4c_path_rename", "path_rename"),
    ("d4c_path_symlink", "path_symlink"),
    ("d4c_sb_mount", "sb_mount"),
    ("d4c_move_mount", "move_mount"),
    ("d4c_inode_set_acl", "inode_set_acl"),
    ("d4c_inode_setxattr", "inode_setxattr"),
    ("d4c_bprm_check", "bprm_check_security"),
    ("d4c_task_alloc", "task_alloc"),
];

/// The LSM hooks some supported kernels lack, and what stands in for each
/// there: `inode_set_acl` is Linux 6.2's; before it POSIX ACLs are set
/// through `inode_setxattr`, which the probes decide too. A program whose
/// hook the running kernel lacks is not loaded; any other missing hook is
/// an error.
pub const OPTIONAL_LSM_HOOKS: &[(&str, &str)] =
    &[("inode_set_acl", "Linux 6.2 and later; before, ACLs are decided at inode_setxattr")];

/// The BTF tracepoints, by program name and tracepoint.
pub const BTF_TRACEPOINTS: &[(&str, &str)] =
    &[("d4c_fork", "sched_process_fork"), ("d4c_exec", "sched_process_exec"), ("d4c_exit", "sched_process_exit")];

/// The classic tracepoints, by program name, category and name.
pub const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("d4c_setsid", "syscalls", "sys_exit_setsid"),
    ("d4c_execve_exit", "syscalls", "sys_exit_execve"),
    ("d4c_execveat_exit", "syscalls", "sys_exit_execveat"),
];

/// The classic tracepoints the probes run without when the kernel refuses
/// to open their perf event, and what stands in for each. Debian's kernels
/// (`CONFIG_SECURITY_PERF_EVENTS_RESTRICT`: `kernel.perf_event_paranoid`
/// 3 by default) refuse `perf_event_open` with EACCES to a process without
/// CAP_SYS_ADMIN, CAP_PERFMON or not, and the DaemonSet does not grant it.
/// Such a tracepoint is loaded (verified) but not attached; any other
/// failure to attach is an error.
///
/// Every classic tracepoint is here: the DaemonSet never grants
/// CAP_SYS_ADMIN, so one that is not would keep the pod from starting on
/// Debian (as `sys_exit_execve` did, found by the `daemonset` VM check).
pub const OPTIONAL_TRACEPOINTS: &[(&str, &str)] = &[
    (
        "sys_exit_setsid",
        "perf_event_open refused: kernel.perf_event_paranoid is above 2 and the daemon lacks CAP_SYS_ADMIN; \
         a new session is seen in the session id of the process's next record",
    ),
    (
        "sys_exit_execve",
        "perf_event_open refused: kernel.perf_event_paranoid is above 2 and the daemon lacks CAP_SYS_ADMIN; \
         an allowed execve that fails afterwards is documented when its process exits or its wait ends, \
         without its errno",
    ),
    (
        "sys_exit_execveat",
        "perf_event_open refused: kernel.perf_event_paranoid is above 2 and the daemon lacks CAP_SYS_ADMIN; \
         an allowed execveat that fails afterwards is documented when its process exits or its wait ends, \
         without its errno",
    ),
];

/// Which cgroup hierarchy identifies containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup v2: the unified hierarchy.
    Unified,
    /// cgroup v1: the memory controller's hierarchy.
    Legacy,
}

/// What containers whose metadata has not arrived get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Every action any container could get
    /// ([`Tables::row_for_unknown_container`]): fail closed.
    FailClosed,
    /// Only what selectors without container conditions give: fail open
    /// for container-specific responses.
    NoContainerConditions,
}

/// How the probes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Blocking responses refuse operations (else they are only reported).
    pub enforce: bool,
    /// The hierarchy whose cgroup ids identify containers.
    pub cgroup_mode: CgroupMode,
    /// Containers' rows at most: distinct container classes (containers
    /// whose selectors' container conditions all hold alike share a row).
    /// `d4c_rows` holds (dynamic classes + 2) entries per row, for these
    /// rows and the pending one; the default is 64 (1,024 ran a
    /// 1,000-selector policy's rows out of memory in a 1 GiB VM).
    pub max_rows: usize,
    /// The treatment of containers without metadata.
    pub pending: Pending,
    /// Load the LSM programs. `false` loads only the tracepoints: for
    /// kernels that refuse LSM programs, where nothing can be decided but
    /// the lifecycle can be reported (and the tracepoints verified).
    pub lsm: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enforce: true,
            cgroup_mode: CgroupMode::Unified,
            max_rows: 1024,
            pending: Pending::FailClosed,
            lsm: true,
        }
    }
}

/// What a row stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RowClass {
    /// Which file selectors hold.
    file: Vec<bool>,
    /// Which process selectors hold.
    process: Vec<bool>,
    /// `(uid, row)`: the users whose row is another (a container's row
    /// only; a user's row has none).
    users: Vec<(u32, u32)>,
}

/// Entries of `d4c_user_rows`: none when the policy has no user condition,
/// else 16 per row, at least 1,024 (8 bytes of key, 4 of value each).
fn user_row_capacity(tables: &Tables, max_rows: usize) -> u32 {
    if !tables.has_user_conditions() {
        return 1;
    }
    u32::try_from(max_rows.saturating_mul(16).max(1024)).unwrap_or(u32::MAX)
}

/// One program's load statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program's name.
    pub name: String,
    /// Instructions the verifier processed (Linux 5.16+; None before).
    pub verified_instructions: Option<u32>,
    /// Times it ran (with `kernel.bpf_stats_enabled=1`).
    pub run_count: u64,
    /// Nanoseconds it ran in all (with `kernel.bpf_stats_enabled=1`).
    pub run_time_ns: u64,
}

/// A ring buffer record: its fixed part, its path bytes and its
/// arguments' bytes. What they mean is the runtime's to decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The fixed part.
    pub head: EventRecord,
    /// The path bytes (at most `PATH_MAX`; a path not resolved whole is
    /// the part the walk wrote).
    pub path: Vec<u8>,
    /// With [`EV_ARGS`]: an exec's arguments, NUL-separated (at most
    /// `ARGS_MAX - 1` bytes); else empty.
    pub args: Vec<u8>,
}

impl Record {
    /// Parses a record as the probes write it: the fixed part, the path's
    /// bytes, then `args_len` bytes of arguments at the end.
    pub fn parse(bytes: &[u8]) -> Result<Record, MapError> {
        let (head, rest) = EventRecord::read_from_prefix(bytes)
            .map_err(|_| MapError(format!("a ring buffer record of {} bytes, shorter than its head", bytes.len())))?;
        let args_len = if head.flags & EV_ARGS != 0 { (head.args_len as usize).min(rest.len()) } else { 0 };
        let (path, args) = rest.split_at(rest.len() - args_len);
        let len = (head.path_len as usize).min(path.len());
        Ok(Record { head, path: path.get(..len).unwrap_or_default().to_vec(), args: args.to_vec() })
    }

    /// The record's bytes as the probes write them: what [`Record::parse`]
    /// reads (for tests and benchmarks that make records).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = zerocopy::IntoBytes::as_bytes(&self.head).to_vec();
        bytes.extend_from_slice(&self.path);
        bytes.extend_from_slice(&self.args);
        bytes
    }

    /// The hook that wrote the record, by the name `cloud_defend.hook_point`
    /// gives it ([`crate::abi::HOOK_POINTS`]): `lsm__file_open`,
    /// `tracepoint__sched_process_exec`, ... `None` when the record's
    /// `hook` is no known `HOOK_*` value (0: written by probes older than
    /// the field).
    pub fn hook_point(&self) -> Option<&'static str> {
        crate::abi::hook_point(self.head.hook)
    }

    /// The path as text (lossy: paths are bytes).
    pub fn path_text(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// The arguments as text, `argv[0]` first, when the record carries
    /// them ([`EV_ARGS`]).
    pub fn args_text(&self) -> Option<Vec<String>> {
        if self.head.flags & EV_ARGS == 0 {
            return None;
        }
        let bytes = self.args.strip_suffix(&[0]).unwrap_or(&self.args);
        if bytes.is_empty() {
            return Some(Vec::new());
        }
        Some(bytes.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
    }

    /// The process name as text.
    pub fn name_text(&self) -> String {
        let n = (self.head.name_len as usize).min(self.head.name.len());
        String::from_utf8_lossy(self.head.name.get(..n).unwrap_or_default()).into_owned()
    }

    /// The acting task's comm as text.
    pub fn comm_text(&self) -> String {
        let end = self.head.comm.iter().position(|&b| b == 0).unwrap_or(self.head.comm.len());
        String::from_utf8_lossy(self.head.comm.get(..end).unwrap_or_default()).into_owned()
    }
}

/// Removes every pin below `dir` (the links of [`Probes::attach_pinned`]),
/// detaching their programs unless something else holds them; then the
/// directories. Returns how many pins were removed. A missing `dir` is no
/// error (nothing is installed).
pub fn unpin_all(dir: &Path) -> Result<usize, MapError> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(error(&format!("cannot read `{}`", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| error(&format!("cannot read `{}`", dir.display()), e))?;
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            removed += unpin_all(&path)?;
        } else {
            // Opened, then unpinned, then closed: the close drops the last
            // reference in this call, so the program is detached when this
            // returns. (An unlink alone leaves the release to a kernel
            // work item, and the old program would still decide for a
            // while.)
            let unpinned = match PinnedLink::from_pin(&path) {
                Ok(link) => link.unpin().map(drop),
                Err(_) => std::fs::remove_file(&path),
            };
            unpinned.map_err(|e| error(&format!("cannot remove the pin `{}`", path.display()), e))?;
            removed += 1;
        }
    }
    std::fs::remove_dir(dir).map_err(|e| error(&format!("cannot remove `{}`", dir.display()), e))?;
    Ok(removed)
}

/// Whether the BPF LSM is active: `bpf` in `/sys/kernel/security/lsm`.
pub fn bpf_lsm_active() -> Result<bool, MapError> {
    let path = "/sys/kernel/security/lsm";
    let text = std::fs::read_to_string(path).map_err(|e| {
        MapError(format!(
            "cannot read `{path}` ({e}): is securityfs mounted (`mount -t securityfs none /sys/kernel/security`)?"
        ))
    })?;
    Ok(text.trim().split(',').any(|lsm| lsm == "bpf"))
}

/// Loaded probes: the object, its tables, and the container rows.
pub struct Probes {
    ebpf: Ebpf,
    /// The ring buffer, made once: aya 0.13.1's `RingBuf` starts its cache
    /// of the producer position at 0, so one made after records were
    /// consumed takes unwritten bytes for records and loops forever.
    ring: RingBuf<MapData>,
    tables: Tables,
    settings: Settings,
    /// The rows, by row id: the selectors' verdicts of each kind, and the
    /// row's user rows (see [`Probes::row_for`]).
    rows: Vec<RowClass>,
    /// Entries written to `d4c_user_rows`.
    user_row_entries: usize,
    /// The optional LSM hooks ([`OPTIONAL_LSM_HOOKS`]) this kernel lacks,
    /// whose programs are neither loaded nor attached, and the optional
    /// tracepoints ([`OPTIONAL_TRACEPOINTS`]) it refuses to attach.
    absent: Vec<&'static str>,
}

impl Probes {
    /// Loads the object with maps sized for `tables`, fills the tables,
    /// the settings and the pending row, and loads (verifies) every
    /// program, without attaching any.
    pub fn load(tables: Tables, settings: Settings) -> Result<Probes, MapError> {
        let btf = Btf::from_sys_fs().map_err(|e| error("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux)", e))?;
        let mut loader = EbpfLoader::new();
        loader.btf(Some(&btf));
        maps::size(&mut loader, &tables, maps::row_entries(&tables, settings.max_rows));
        loader.set_max_entries("d4c_user_rows", user_row_capacity(&tables, settings.max_rows));
        let mut ebpf = loader.load(PROBES_OBJECT).map_err(|e| error("cannot load the probes object", e))?;
        maps::fill(&mut ebpf, &tables)?;
        let events = ebpf.take_map("d4c_events").ok_or_else(|| MapError("no map `d4c_events`".into()))?;
        let ring = RingBuf::try_from(events).map_err(|e| error("d4c_events", e))?;
        let mut probes =
            Probes { ebpf, ring, tables, settings, rows: Vec::new(), user_row_entries: 0, absent: Vec::new() };
        probes.write_config()?;
        probes.write_pending_row()?;
        for (name, hook) in LSM_PROGRAMS.iter().filter(|_| settings.lsm) {
            let program: &mut Lsm = program_mut(&mut probes.ebpf, name)?;
            match program.load(hook, &btf) {
                Ok(()) => {}
                // The hook's BTF function is not in this kernel: fine for an
                // optional hook, found out before the verifier ran.
                Err(ProgramError::Btf(_)) if OPTIONAL_LSM_HOOKS.iter().any(|(h, _)| h == hook) => {
                    probes.absent.push(hook);
                }
                Err(e) => return Err(error(&format!("the verifier refused `{name}` (lsm/{hook})"), e)),
            }
        }
        for (name, point) in BTF_TRACEPOINTS {
            let program: &mut BtfTracePoint = program_mut(&mut probes.ebpf, name)?;
            program
                .load(point, &btf)
                .map_err(|e| error(&format!("the verifier refused `{name}` (tp_btf/{point})"), e))?;
        }
        for (name, category, point) in TRACEPOINTS {
            let program: &mut TracePoint = program_mut(&mut probes.ebpf, name)?;
            program
                .load()
                .map_err(|e| error(&format!("the verifier refused `{name}` (tracepoint/{category}/{point})"), e))?;
        }
        Ok(probes)
    }

    fn write_config(&mut self) -> Result<(), MapError> {
        let config = Config {
            enforce: u32::from(self.settings.enforce),
            cgroup_mode: match self.settings.cgroup_mode {
                CgroupMode::Unified => CGROUP_UNIFIED,
                CgroupMode::Legacy => CGROUP_LEGACY,
            },
            user_rows: u32::from(self.tables.has_user_conditions()),
            reserved: 0,
        };
        let map = self.ebpf.map_mut("d4c_config").ok_or_else(|| MapError("no map `d4c_config`".into()))?;
        // aya's Pod is an unsafe trait: records go in as zerocopy bytes.
        let mut array: Array<&mut MapData, [u8; 16]> = Array::try_from(map).map_err(|e| error("d4c_config", e))?;
        let bytes: [u8; 16] = zerocopy::transmute!(config);
        array.set(0, bytes, 0).map_err(|e| error("d4c_config", e))
    }

    fn write_pending_row(&mut self) -> Result<(), MapError> {
        for kind in [Kind::File, Kind::Process] {
            let row = match self.settings.pending {
                Pending::FailClosed => self.tables.row_for_unknown_container(kind),
                Pending::NoContainerConditions => self.tables.row(kind, &self.tables.unconditional_selectors(kind)),
            };
            maps::write_row(&mut self.ebpf, ROW_PENDING, kind, &row)?;
        }
        Ok(())
    }

    /// The optional LSM hooks this kernel lacks (see [`OPTIONAL_LSM_HOOKS`])
    /// and, once attached, the optional tracepoints it refused (see
    /// [`OPTIONAL_TRACEPOINTS`]).
    pub fn absent_hooks(&self) -> &[&'static str] {
        &self.absent
    }

    /// Switches enforcement on or off, live: off, blocking responses are
    /// only reported.
    pub fn set_enforce(&mut self, enforce: bool) -> Result<(), MapError> {
        self.settings.enforce = enforce;
        self.write_config()
    }

    /// Attaches every program. Refuses to when the settings enforce and
    /// the BPF LSM is not active, as enforcement would then silently not
    /// happen.
    pub fn attach(&mut self) -> Result<(), MapError> {
        self.attach_with(None)
    }

    /// Attaches every program as [`Probes::attach`] does and pins each
    /// link in `dir` (created; on a bpffs), so that the programs stay
    /// attached, and enforcing, after this process exits or crashes. Their
    /// maps live as long as they do. Remove the pins ([`unpin_all`]) to
    /// detach them.
    pub fn attach_pinned(&mut self, dir: &Path) -> Result<(), MapError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| error(&format!("cannot create the pin directory `{}`", dir.display()), e))?;
        self.attach_with(Some(dir))
    }

    fn attach_with(&mut self, pin: Option<&Path>) -> Result<(), MapError> {
        if self.settings.lsm && self.settings.enforce && !bpf_lsm_active()? {
            return Err(MapError(
                "the BPF LSM is not active (`bpf` is not in /sys/kernel/security/lsm): nothing would be enforced; \
                 boot with `lsm=...,bpf`, or run with enforcement off"
                    .into(),
            ));
        }
        let pin_link = |name: &str, link: Result<FdLink, String>| -> Result<(), MapError> {
            let Some(dir) = pin else { return Ok(()) };
            let path = dir.join(name);
            link.map_err(MapError)?
                .pin(&path)
                .map(drop)
                .map_err(|e| error(&format!("cannot pin `{name}` at `{}`", path.display()), e))
        };
        for (name, _) in LSM_PROGRAMS.iter().filter(|(_, hook)| self.settings.lsm && !self.absent.contains(hook)) {
            let program: &mut Lsm = program_mut(&mut self.ebpf, name)?;
            let id = program.attach().map_err(|e| error(&format!("cannot attach `{name}`"), e))?;
            if pin.is_some() {
                let link = program.take_link(id).map(FdLink::from).map_err(|e| format!("`{name}`: {e}"));
                pin_link(name, link)?;
            }
        }
        for (name, _) in BTF_TRACEPOINTS {
            let program: &mut BtfTracePoint = program_mut(&mut self.ebpf, name)?;
            let id = program.attach().map_err(|e| error(&format!("cannot attach `{name}`"), e))?;
            if pin.is_some() {
                let link = program.take_link(id).map(FdLink::from).map_err(|e| format!("`{name}`: {e}"));
                pin_link(name, link)?;
            }
        }
        if !TRACEPOINTS.is_empty() {
            crate::sys::ensure_tracefs().map_err(|e| {
                error("tracefs is not mounted and cannot be (mount -t tracefs none /sys/kernel/tracing)", e)
            })?;
        }
        for (name, category, point) in TRACEPOINTS {
            let program: &mut TracePoint = program_mut(&mut self.ebpf, name)?;
            let id = match program.attach(category, point) {
                Ok(id) => id,
                Err(e) if perf_event_refused(&e) && OPTIONAL_TRACEPOINTS.iter().any(|(p, _)| p == point) => {
                    if !self.absent.contains(point) {
                        self.absent.push(point);
                    }
                    continue;
                }
                Err(e) => return Err(error(&format!("cannot attach `{name}`"), e)),
            };
            if pin.is_some() {
                // A perf-event link is a BPF link (pinnable) from Linux 5.15.
                let link = program.take_link(id).map_err(|e| format!("`{name}`: {e}")).and_then(|l| {
                    FdLink::try_from(l)
                        .map_err(|e| format!("`{name}` is not attached by a BPF link (Linux < 5.15?): {e}"))
                });
                pin_link(name, link)?;
            }
        }
        Ok(())
    }

    /// The row of `container`, whose `/etc/passwd` names `users` as
    /// [`Tables::named_users`] lists them (the ids a user condition can
    /// name there, with their names): an existing row when one has the
    /// same verdicts, else a new one, written.
    ///
    /// A container's row holds the verdicts for a user whom no condition
    /// names. Each named user whose verdicts differ gets a row of its own
    /// (shared by every container and user with those verdicts) and an
    /// entry `(row, uid)` in `d4c_user_rows`; the container's row stands
    /// for that mapping too, so two containers whose passwd files name
    /// `app` differently get different rows.
    pub fn row_for(&mut self, container: &Container, users: &[User]) -> Result<u32, MapError> {
        let file = self.tables.container_selectors(Kind::File, container);
        let process = self.tables.container_selectors(Kind::Process, container);
        let mut user_rows = Vec::new();
        for user in users {
            let verdicts = self.tables.selectors_for(Kind::Process, container, Some(user));
            if verdicts != process {
                let row = self.row_of(RowClass { file: file.clone(), process: verdicts, users: Vec::new() })?;
                user_rows.push((user.id, row));
            }
        }
        self.row_of(RowClass { file, process, users: user_rows })
    }

    /// The row of `class`, written when new.
    fn row_of(&mut self, class: RowClass) -> Result<u32, MapError> {
        if let Some(row) = self.rows.iter().position(|c| *c == class) {
            return u32::try_from(row).map_err(|_| MapError("too many rows".into()));
        }
        if self.rows.len() >= self.settings.max_rows {
            return Err(MapError(format!(
                "more than {} distinct container classes: raise the row limit",
                self.settings.max_rows
            )));
        }
        let capacity = user_row_capacity(&self.tables, self.settings.max_rows) as usize;
        if self.user_row_entries.saturating_add(class.users.len()) > capacity {
            return Err(MapError(format!(
                "more than {capacity} users with rows of their own across containers: raise the row limit"
            )));
        }
        let row = u32::try_from(self.rows.len()).map_err(|_| MapError("too many rows".into()))?;
        let file_row = self.tables.row(Kind::File, &class.file);
        let process_row = self.tables.row(Kind::Process, &class.process);
        maps::write_row(&mut self.ebpf, row, Kind::File, &file_row)?;
        maps::write_row(&mut self.ebpf, row, Kind::Process, &process_row)?;
        maps::write_user_rows(&mut self.ebpf, row, &class.users)?;
        self.user_row_entries += class.users.len();
        self.rows.push(class);
        Ok(row)
    }

    /// The selectors' verdicts of row `row` (a container's, or a
    /// container's and user's), of `kind`.
    pub fn row_verdicts(&self, row: u32, kind: Kind) -> Option<&[bool]> {
        let class = self.rows.get(row as usize)?;
        Some(match kind {
            Kind::File => &class.file,
            Kind::Process => &class.process,
            Kind::Network => &[],
        })
    }

    /// The kind of a decision record (`None` for other records).
    pub fn record_kind(record: &Record) -> Option<Kind> {
        match (record.head.record, record.head.kind) {
            (RECORD_DECISION, KIND_FILE) => Some(Kind::File),
            (RECORD_DECISION, KIND_PROCESS) => Some(Kind::Process),
            _ => None,
        }
    }

    /// The selectors a decision record's row entry matched, by index into
    /// its kind's selectors: the explanation of its actions. A pending
    /// container's record is explained as any container's could be (every
    /// container condition taken as holding), since its row is the union.
    pub fn matched_selectors(&self, record: &Record) -> BTreeSet<usize> {
        let Some(kind) = Probes::record_kind(record) else { return BTreeSet::new() };
        self.explain(kind, record.head.dyn_class, record.head.row)
    }

    /// The selectors of `kind` the row entry of dynamic class `dyn_class`
    /// in row `row` matched, by index: what [`Probes::matched_selectors`]
    /// says of a decision record with these values.
    pub fn explain(&self, kind: Kind, dyn_class: u32, row: u32) -> BTreeSet<usize> {
        let members = self.tables.dyn_members(kind, dyn_class);
        let in_container = match self.row_verdicts(row, kind) {
            Some(verdicts) => verdicts.to_vec(),
            None => vec![true; members.len()],
        };
        self.tables.row_entry(kind, &members, &in_container).matched
    }

    /// The loaded tables.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    fn cgroups(&mut self) -> Result<HashMap<&mut MapData, u64, [u8; 8]>, MapError> {
        let map = self.ebpf.map_mut("d4c_cgroups").ok_or_else(|| MapError("no map `d4c_cgroups`".into()))?;
        HashMap::try_from(map).map_err(|e| error("d4c_cgroups", e))
    }

    /// Registers the cgroup `cgroup_id` as `container`'s, whose
    /// `/etc/passwd` names `users` ([`Probes::row_for`]). Returns its row.
    /// Registering it again (its passwd changed) moves it to its new row.
    pub fn add_container(&mut self, cgroup_id: u64, container: &Container, users: &[User]) -> Result<u32, MapError> {
        let row = self.row_for(container, users)?;
        self.cgroups()?
            .insert(cgroup_id, entry(CgroupEntry { row, flags: CGROUP_CONTAINER }), 0)
            .map_err(|e| error("cannot register a container's cgroup", e))?;
        Ok(row)
    }

    /// Registers a kubepods root: tasks below it whose cgroup is not a
    /// registered container's are decided by the pending row.
    pub fn add_kubepods_root(&mut self, cgroup_id: u64) -> Result<(), MapError> {
        self.cgroups()?
            .insert(cgroup_id, entry(CgroupEntry { row: 0, flags: CGROUP_KUBEPODS }), 0)
            .map_err(|e| error("cannot register a kubepods root", e))
    }

    /// Forgets a cgroup (its container ended).
    pub fn remove_cgroup(&mut self, cgroup_id: u64) -> Result<(), MapError> {
        self.cgroups()?.remove(&cgroup_id).map_err(|e| error("cannot forget a cgroup", e))
    }

    /// The ring buffer, to read records from (poll its fd for readiness).
    pub fn events(&mut self) -> &mut RingBuf<MapData> {
        &mut self.ring
    }

    /// Reads every record waiting in the ring buffer.
    pub fn drain(&mut self) -> Result<Vec<Record>, MapError> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            if item.len() >= EVENT_RECORD_BYTES {
                out.push(Record::parse(&item)?);
            }
        }
        Ok(out)
    }

    /// The counters, summed over CPUs, by index (`COUNT_*`).
    pub fn counters(&self) -> Result<Vec<u64>, MapError> {
        let map = self.ebpf.map("d4c_counters").ok_or_else(|| MapError("no map `d4c_counters`".into()))?;
        let array: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(|e| error("d4c_counters", e))?;
        (0..COUNTERS).map(|i| Ok(array.get(&i, 0).map_err(|e| error("d4c_counters", e))?.iter().sum())).collect()
    }

    /// Every program's load and run statistics.
    pub fn stats(&self) -> Vec<ProgramStats> {
        self.ebpf
            .programs()
            .map(|(name, program)| {
                let info = program.info().ok();
                ProgramStats {
                    name: name.to_string(),
                    verified_instructions: info.as_ref().and_then(|i| i.verified_instruction_count()),
                    run_count: info.as_ref().map_or(0, |i| i.run_count()),
                    run_time_ns: info.as_ref().map_or(0, |i| i.run_time().as_nanos() as u64),
                }
            })
            .collect()
    }
}

/// Whether attaching a classic tracepoint failed because the kernel
/// refused the daemon its perf event (EACCES: Debian's
/// `perf_event_paranoid` 3, or an LSM's policy), rather than for want of
/// the tracepoint, of tracefs or of CAP_PERFMON (EPERM, which the LSM
/// programs need too).
fn perf_event_refused(e: &ProgramError) -> bool {
    matches!(e, ProgramError::SyscallError(aya::sys::SyscallError { call: "perf_event_open_trace_point", io_error })
        if io_error.raw_os_error() == Some(libc::EACCES))
}

fn entry(entry: CgroupEntry) -> [u8; 8] {
    zerocopy::transmute!(entry)
}

fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, MapError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| MapError(format!("the probes object has no program `{name}`")))?
        .try_into()
        .map_err(|e| error(&format!("program `{name}`"), e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

    use super::*;
    use crate::abi::{CONSTANTS, HOOK_POINTS, HOOK_SCHED_PROCESS_EXIT, HOOK_SYS_EXIT_EXECVEAT};
    use zerocopy::FromZeros;

    /// Regression (the `daemonset` VM check: the pod exited with
    /// "cannot attach `d4c_execve_exit`: perf_event_open_trace_point
    /// failed: Permission denied"): every classic tracepoint may be left
    /// out, since the DaemonSet's pod has no CAP_SYS_ADMIN, and every
    /// optional one is a classic tracepoint.
    #[test]
    fn every_classic_tracepoint_is_optional_for_a_pod_without_cap_sys_admin() {
        for (name, _, point) in TRACEPOINTS {
            assert!(OPTIONAL_TRACEPOINTS.iter().any(|(p, _)| p == point), "`{name}` ({point}) is not optional");
        }
        for (point, why) in OPTIONAL_TRACEPOINTS {
            assert!(TRACEPOINTS.iter().any(|(_, _, p)| p == point), "{point} is not a classic tracepoint");
            assert!(!why.is_empty());
        }
    }

    fn record(hook: u32) -> Record {
        let mut head = EventRecord::new_zeroed();
        head.hook = hook;
        Record { head, path: Vec::new(), args: Vec::new() }
    }

    /// The hook point of the program attached where `D4C_HOOK_<X>` says,
    /// from the program tables: `lsm__` and the LSM hook, `tracepoint__`
    /// and the BTF tracepoint, `tracepoint__<category>_` and the classic
    /// one.
    fn program_hook_point(constant: &str) -> Option<String> {
        let x = constant.strip_prefix("D4C_HOOK_")?.to_ascii_lowercase();
        if LSM_PROGRAMS.iter().any(|(_, hook)| *hook == x) {
            return Some(format!("lsm__{x}"));
        }
        if BTF_TRACEPOINTS.iter().any(|(_, point)| *point == x) {
            return Some(format!("tracepoint__{x}"));
        }
        TRACEPOINTS
            .iter()
            .find(|(_, _, point)| *point == x)
            .map(|(_, category, _)| format!("tracepoint__{category}_{x}"))
    }

    #[test]
    fn hook_point_names_every_hook_by_its_program() {
        let hooks: Vec<_> = CONSTANTS.iter().filter(|(name, _)| name.starts_with("D4C_HOOK_")).collect();
        for (name, value) in &hooks {
            let expected = program_hook_point(name).unwrap_or_else(|| panic!("`{name}` names no program"));
            assert_eq!(record(*value as u32).hook_point(), Some(expected.as_str()), "`{name}`");
        }
        // One hook per program, each named once.
        assert_eq!(hooks.len(), LSM_PROGRAMS.len() + BTF_TRACEPOINTS.len() + TRACEPOINTS.len());
        let mut names: Vec<_> = HOOK_POINTS.iter().map(|(_, name)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), hooks.len());
        // Ours is the tracepoint; the original's exit was kprobe__taskstats_exit.
        assert_eq!(record(HOOK_SCHED_PROCESS_EXIT).hook_point(), Some("tracepoint__sched_process_exit"));
        for unknown in [0, HOOK_SYS_EXIT_EXECVEAT + 1, u32::MAX] {
            assert_eq!(record(unknown).hook_point(), None, "hook {unknown}");
        }
    }

    #[test]
    fn records_parse_to_their_path_and_arguments() {
        use crate::abi::{ARGS_MAX, EV_ARGS, PATH_MAX};
        let mut head = EventRecord::new_zeroed();
        head.flags = EV_ARGS;
        head.path_len = 9;
        head.args_len = 9;
        let written = Record { head, path: b"/bin/true".to_vec(), args: b"true\0-x\0\0".to_vec() };
        let read = Record::parse(&written.to_bytes()).unwrap();
        assert_eq!(read, written);
        assert_eq!(read.args_text(), Some(vec!["true".to_string(), "-x".into(), "".into()]));
        // A path not resolved whole: path_len says PATH_MAX + 1, the bytes
        // are the walk's; the arguments are still the record's last bytes.
        let mut cut = written.clone();
        cut.head.path_len = PATH_MAX as u32 + 1;
        let read = Record::parse(&cut.to_bytes()).unwrap();
        assert_eq!((read.path.as_slice(), read.args.as_slice()), (&b"/bin/true"[..], &b"true\0-x\0\0"[..]));
        // Lengths past the record's end are cut to it, never read beyond.
        let mut lying = written.clone();
        lying.head.args_len = ARGS_MAX as u32 * 8;
        let read = Record::parse(&lying.to_bytes()).unwrap();
        assert!(read.path.is_empty() && read.args.len() == 18);
        // Without EV_ARGS the trailing bytes are path.
        let mut plain = written;
        plain.head.flags = 0;
        plain.head.path_len = 18;
        let read = Record::parse(&plain.to_bytes()).unwrap();
        assert_eq!((read.path.len(), read.args_text()), (18, None));
        assert!(Record::parse(&[0; 12]).is_err());
        assert!(HOOK_POINTS.len() > 2);
    }
}
