//! The process cache: what is known of each container process, kept from
//! the probes' lifecycle records (fork, exec, exit, setsid) and completed
//! from `/proc` for processes that started before the daemon.
//!
//! In: ring buffer records in order. Out: per process, its ancestry and
//! the facts the ECS `process.*` fields need (executable, args, working
//! directory, start time, ids, interactivity, previous executables).
//!
//! Invariants: the cache is bounded ([`ProcessCache::new`]'s capacity,
//! ended processes first out); a lookup never fails, it returns what is
//! known (the record's own fields at least). Processes are shared
//! (`Arc`), so that a record costs no copy of a process's arguments and
//! history, and a process's serialised members ([`Process::ecs_json`])
//! outlive the record that asked for them.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use d4c_kernel_probes::abi::{
    EventRecord, EV_INTERACTIVE, LIFE_EXEC, LIFE_EXIT, LIFE_FORK, LIFE_SETSID, RECORD_LIFECYCLE,
};
use d4c_kernel_probes::probes::Record;

/// An executable a process ran before its current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// Its path.
    pub executable: String,
    /// Its arguments, `argv[0]` first.
    pub args: Vec<String>,
}

/// One process (a thread group), by its pid in the initial pid namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    /// Its pid (tgid).
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its session leader's pid.
    pub sid: u32,
    /// Its process group leader's pid (0 when unknown).
    pub pgid: u32,
    /// Its real user and group ids.
    pub uid: u32,
    /// Its real group id.
    pub gid: u32,
    /// When it started, in nanoseconds since boot (`CLOCK_BOOTTIME`).
    pub start_boot_ns: u64,
    /// Its current executable.
    pub executable: Option<String>,
    /// Its name (comm).
    pub name: String,
    /// Its arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// Its working directory, when it could be read.
    pub working_directory: Option<String>,
    /// Whether it has a controlling terminal.
    pub interactive: bool,
    /// What it ran before (most recent last; at most [`MAX_PREVIOUS`]).
    pub previous: Vec<Exec>,
    /// Its cgroup id.
    pub cgroup_id: u64,
    /// Its exit code, once it ended.
    pub exit_code: Option<i32>,
    /// A cache of its members as the documents write them: filled by
    /// [`crate::ecs`] on first use, emptied by the cache whenever a field
    /// it holds changes (a forked child, an exec, new user or group ids).
    pub ecs_json: OnceLock<crate::ecs::ProcessJson>,
}

impl Process {
    /// Takes the ids every record carries (they may have changed since the
    /// process was cached: a reparenting, a setuid, a cgroup move).
    fn refresh(&mut self, head: &EventRecord) {
        if (self.uid, self.gid) != (head.uid, head.gid) {
            self.ecs_json.take();
        }
        self.ppid = head.ppid;
        // Only setsid() changes a process's session, making it the leader
        // of a new session and process group: seen here as well as in the
        // setsid record, which a kernel may refuse the daemon (the probes'
        // OPTIONAL_TRACEPOINTS).
        if head.sid != self.sid && head.sid == head.tgid {
            self.pgid = head.tgid;
        }
        self.sid = head.sid;
        self.uid = head.uid;
        self.gid = head.gid;
        self.cgroup_id = head.cgroup_id;
    }

    /// The child of a fork: a copy of this process with its own pid and
    /// start, and no history.
    fn forked(&self, head: &EventRecord) -> Process {
        Process {
            pid: head.child_tgid,
            ppid: head.tgid,
            start_boot_ns: head.ktime_ns,
            previous: Vec::new(),
            exit_code: None,
            ecs_json: OnceLock::new(),
            ..self.clone()
        }
    }

    /// Runs `file` with `args` in `cwd` (when known; else where it was):
    /// the current executable becomes a previous one.
    fn exec(&mut self, record: &Record, file: String, args: Vec<String>, cwd: Option<String>) {
        if cwd.is_some() {
            self.working_directory = cwd;
        }
        let executable =
            if file.starts_with('/') { file } else { join(self.working_directory.as_deref().unwrap_or("/"), &file) };
        if let Some(old) = self.executable.take() {
            self.previous.push(Exec { executable: old, args: std::mem::take(&mut self.args) });
            if self.previous.len() > MAX_PREVIOUS {
                self.previous.remove(0);
            }
        }
        self.executable = Some(executable);
        self.name = record.name_text();
        self.args = args;
        self.interactive = record.head.flags & EV_INTERACTIVE != 0;
        self.ecs_json.take();
    }
}

/// How many ended processes are kept (for records that arrive after their
/// exit, and for the ancestry of their orphans).
pub const MAX_ENDED: usize = 1024;

/// How many previous executables are kept per process.
pub const MAX_PREVIOUS: usize = 4;

/// The cache.
#[derive(Debug)]
pub struct ProcessCache {
    processes: HashMap<u32, Arc<Process>>,
    /// Ended processes, oldest first: evicted first.
    ended: VecDeque<u32>,
    capacity: usize,
    /// Where `/proc` is (`/proc`, or the host's when the daemon runs in a
    /// pid namespace with it mounted elsewhere).
    proc_root: PathBuf,
}

impl ProcessCache {
    /// An empty cache of at most `capacity` processes, reading `/proc` at
    /// `proc_root`.
    pub fn new(capacity: usize, proc_root: PathBuf) -> ProcessCache {
        ProcessCache { processes: HashMap::new(), ended: VecDeque::new(), capacity: capacity.max(16), proc_root }
    }

    /// How many processes are cached.
    pub fn len(&self) -> usize {
        self.processes.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }

    /// The process `pid`, if cached.
    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.processes.get(&pid).map(|p| &**p)
    }

    /// Applies a lifecycle record; other records only make sure their
    /// process is known and refresh its ids (parent, session, user, group,
    /// cgroup) from the record. Returns the process the record is about,
    /// shared with the cache: holding it across the next `observe` of the
    /// same process costs that `observe` a copy of the process.
    pub fn observe(&mut self, record: &Record) -> Arc<Process> {
        let head = &record.head;
        let lifecycle = head.record == RECORD_LIFECYCLE;
        // Read before the process is borrowed from the map.
        let exec = (lifecycle && head.op == LIFE_EXEC).then(|| {
            let args = record.exec_args().or_else(|| read_args(&self.proc_root, head.tgid)).unwrap_or_default();
            // The working directory as the new program starts in it: read
            // now, as a container's first process only enters its root
            // just before it execs its entrypoint.
            let cwd = container_path(&self.proc_root.join(head.tgid.to_string()), "cwd");
            (record.exec_file(), args, cwd)
        });
        let slot = self.processes.entry(head.tgid).or_insert_with(|| Arc::new(read_proc(&self.proc_root, record)));
        // Unshared unless the caller still holds the previous result.
        let process = Arc::make_mut(slot);
        process.refresh(head);
        let mut child = None;
        if lifecycle {
            match head.op {
                LIFE_FORK => child = Some(process.forked(head)),
                LIFE_EXIT => {
                    process.exit_code = Some(exit_status(head.child_tgid));
                    self.ended.push_back(head.tgid);
                }
                LIFE_SETSID => {
                    process.sid = head.tgid;
                    process.pgid = head.tgid;
                }
                _ => {}
            }
            if let Some((file, args, cwd)) = exec {
                process.exec(record, file, args, cwd);
            }
        }
        let observed = Arc::clone(slot);
        if let Some(child) = child {
            self.processes.insert(child.pid, Arc::new(child));
        }
        self.evict();
        observed
    }

    /// Learns from `/proc` every process in the cgroup directory
    /// `cgroup_dir` (id `cgroup_id`) that the cache does not know: a
    /// container's processes that started before the daemon, read while
    /// they run (a process that acts and exits before its record is read
    /// can no longer be read then). Returns how many were learned.
    pub fn learn_cgroup(&mut self, cgroup_dir: &Path, cgroup_id: u64) -> usize {
        let Ok(procs) = std::fs::read_to_string(cgroup_dir.join("cgroup.procs")) else { return 0 };
        let mut learned = 0;
        for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            if self.processes.contains_key(&pid) {
                continue;
            }
            if let Some(mut process) = from_proc(&self.proc_root, pid, cgroup_id) {
                // Running in a registered container: in its root already
                // (but for its first process, whose exec reads it again).
                process.working_directory = container_path(&self.proc_root.join(pid.to_string()), "cwd");
                self.processes.insert(pid, Arc::new(process));
                learned += 1;
            }
        }
        self.evict();
        learned
    }

    /// The ancestors of `pid` in its container (parent first), stopping at
    /// the first process outside the container's cgroup or not known.
    pub fn ancestors(&self, pid: u32) -> Vec<&Process> {
        let mut chain = Vec::new();
        let Some(mut current) = self.processes.get(&pid) else { return chain };
        while chain.len() < 64 {
            match self.processes.get(&current.ppid) {
                Some(parent) if parent.cgroup_id == current.cgroup_id && parent.pid != current.pid => {
                    chain.push(parent);
                    current = parent;
                }
                _ => break,
            }
        }
        chain
    }

    /// Forgets `pid`, an ended process, unless a live process has taken
    /// the pid since.
    fn forget_ended(&mut self, pid: u32) {
        if self.processes.get(&pid).is_some_and(|p| p.exit_code.is_some()) {
            self.processes.remove(&pid);
        }
    }

    /// Brings the cache back within its bounds.
    fn evict(&mut self) {
        // Ended processes are kept only as long as a late record or an
        // orphan's ancestry may still name them: the most recent few.
        while self.ended.len() > MAX_ENDED {
            if let Some(pid) = self.ended.pop_front() {
                self.forget_ended(pid);
            }
        }
        while self.processes.len() > self.capacity {
            match self.ended.pop_front() {
                Some(pid) => self.forget_ended(pid),
                None => {
                    // Every cached process is alive: forget the oldest.
                    let oldest = self.processes.values().min_by_key(|p| p.start_boot_ns).map(|p| p.pid);
                    if let Some(pid) = oldest {
                        self.processes.remove(&pid);
                    } else {
                        break;
                    }
                }
            }
        }
    }
}

/// The arguments of `pid`, from `<proc_root>/<pid>/cmdline`.
fn read_args(proc_root: &Path, pid: u32) -> Option<Vec<String>> {
    let bytes = std::fs::read(proc_root.join(pid.to_string()).join("cmdline")).ok()?;
    Some(split_nul(&bytes))
}

/// A process from `<proc_root>/<tgid>`, with the record's ids (the
/// kernel's at the event); the record's fields alone when `/proc` has it
/// no more (a short-lived process that started before the daemon).
/// Without a working directory: a process first seen by a record may be a
/// container's first, which has not entered the container's root yet (its
/// exec, which does, reads it).
fn read_proc(proc_root: &Path, record: &Record) -> Process {
    let head = &record.head;
    let mut process = from_proc(proc_root, head.tgid, head.cgroup_id).unwrap_or_else(|| Process {
        pid: head.tgid,
        start_boot_ns: head.ktime_ns,
        name: record.comm_text(),
        interactive: head.flags & EV_INTERACTIVE != 0,
        cgroup_id: head.cgroup_id,
        ..Process::default()
    });
    if head.record == RECORD_LIFECYCLE && head.op == LIFE_EXEC {
        // `/proc` shows the new program already, which the exec record
        // brings itself: what ran before is unknown, not that.
        process.executable = None;
        process.args.clear();
    }
    process.refresh(head);
    process
}

/// The process `pid` as `<proc_root>/<pid>` describes it, in the cgroup
/// `cgroup_id`; `None` when it is gone. Without its working directory,
/// which only a caller that knows the process is in its root reads.
/// Fields whose files cannot be read are left out (`exe` of another
/// user's process needs `CAP_SYS_PTRACE`).
fn from_proc(proc_root: &Path, pid: u32, cgroup_id: u64) -> Option<Process> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_owned();
    let fields = stat_fields(&stat)?;
    let number = |i: usize| fields.get(i).and_then(|s| s.parse::<i64>().ok());
    let id = |i: usize| number(i).and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    // Real user and group ids: the first of `status`'s four.
    let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    let real = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse::<u32>().ok()).unwrap_or(0)
    };
    let tick_ns = 1_000_000_000 / rustix::param::clock_ticks_per_second().max(1);
    Some(Process {
        pid,
        ppid: id(1),
        pgid: id(2),
        sid: id(3),
        uid: real("Uid:"),
        gid: real("Gid:"),
        start_boot_ns: number(19).and_then(|t| u64::try_from(t).ok()).unwrap_or(0).saturating_mul(tick_ns),
        executable: container_path(&dir, "exe"),
        name,
        args: read_args(proc_root, pid).unwrap_or_default(),
        working_directory: None,
        // The controlling terminal (`tty_nr`) is the session's: whether
        // its leader has one.
        interactive: number(4).is_some_and(|tty| tty != 0),
        previous: Vec::new(),
        cgroup_id,
        exit_code: None,
        ecs_json: OnceLock::new(),
    })
}

/// The path a process's `link` (`exe`, `cwd`) names, as the process sees
/// it: the link read below `dir` (`<proc_root>/<pid>`), less the process's
/// root when that is a directory of ours (a chroot, `runc --no-pivot`); a
/// container that pivoted its root shows container paths already. `None`
/// when the link cannot be read (the process is gone, or it belongs to
/// another user and the daemon lacks `CAP_SYS_PTRACE`).
fn container_path(dir: &Path, link: &str) -> Option<String> {
    let target = std::fs::read_link(dir.join(link)).ok()?;
    let root = std::fs::read_link(dir.join("root")).ok();
    Some(below_root(&target.to_string_lossy(), &root.as_deref().map(Path::to_string_lossy).unwrap_or_default()))
}

/// `target` (a `/proc` link's text) as seen from `root` (the process's
/// root link's text): the root's prefix removed, and the ` (deleted)` the
/// kernel appends for a removed file.
fn below_root(target: &str, root: &str) -> String {
    let target = target.strip_suffix(" (deleted)").unwrap_or(target);
    let root = root.trim_end_matches('/');
    let inside = match target.strip_prefix(root) {
        Some(rest) if !root.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => target,
    };
    if inside.is_empty() {
        "/".to_owned()
    } else {
        inside.to_owned()
    }
}

/// NUL-separated strings (a trailing NUL ends the last).
fn split_nul(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// `/proc/<pid>/stat`'s fields after the command (field 3 on, 0-based
/// here from the state): the command may hold spaces and parentheses, so
/// the split starts after its last `)`.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    Some(after.split_whitespace().collect())
}

/// A wait status as an exit code: the code, or 128 + the signal.
fn exit_status(status: u32) -> i32 {
    let signal = status & 0x7f;
    if signal == 0 {
        ((status >> 8) & 0xff) as i32
    } else {
        128 + signal as i32
    }
}

/// `base` joined with the relative `path`, with `.` and `..` folded.
fn join(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in base.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4c_kernel_probes::abi::{EventRecord, ARGS_OFFSET, EV_ARGS, RECORD_DECISION};
    use zerocopy::FromZeros;

    #[test]
    fn a_cgroups_processes_are_learned_from_proc() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("d4c-learn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let me = std::process::id();
        // Ourselves, and a pid no process has.
        std::fs::write(dir.join("cgroup.procs"), format!("{me}\n4194305\n")).map_err(|e| e.to_string())?;
        let mut cache = ProcessCache::new(64, PathBuf::from("/proc"));
        let learned = cache.learn_cgroup(&dir, 77);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(learned, 1);
        let process = cache.get(me).ok_or("not learned")?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        assert_eq!(process.executable.as_deref(), Some(exe.to_string_lossy().as_ref()));
        assert_eq!(process.cgroup_id, 77);
        assert_eq!(process.ppid, std::os::unix::process::parent_id());
        assert!(!process.args.is_empty() && process.start_boot_ns > 0);
        // Known processes are not read again.
        assert_eq!(cache.learn_cgroup(Path::new("/nonexistent"), 77), 0);
        Ok(())
    }

    #[test]
    fn links_read_as_the_process_sees_them() -> Result<(), String> {
        // A chroot (runc --no-pivot): the root's prefix goes.
        assert_eq!(below_root("/run/c/rootfs/usr/bin/sh", "/run/c/rootfs"), "/usr/bin/sh");
        assert_eq!(below_root("/run/c/rootfs", "/run/c/rootfs/"), "/");
        // Not below the root (a sibling with the same prefix), the host's
        // root, or a pivoted container: as it is.
        assert_eq!(below_root("/run/c/rootfs2/x", "/run/c/rootfs"), "/run/c/rootfs2/x");
        assert_eq!(below_root("/usr/bin/sh", "/"), "/usr/bin/sh");
        assert_eq!(below_root("/usr/bin/sh", ""), "/usr/bin/sh");
        assert_eq!(below_root("/tmp/stage2 (deleted)", "/"), "/tmp/stage2");
        // This process, from /proc.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        assert_eq!(container_path(Path::new("/proc/self"), "exe"), Some(exe.to_string_lossy().into_owned()));
        assert_eq!(container_path(Path::new("/proc/0"), "exe"), None);
        Ok(())
    }

    fn record(kind: u32, op: u32, tgid: u32, ppid: u32) -> Record {
        let mut head = EventRecord::new_zeroed();
        head.record = kind;
        head.op = op;
        head.pid = tgid;
        head.tgid = tgid;
        head.ppid = ppid;
        head.sid = 1;
        head.cgroup_id = 77;
        Record { head, path: Vec::new() }
    }

    fn cache() -> ProcessCache {
        ProcessCache::new(64, PathBuf::from("/nonexistent-proc"))
    }

    #[test]
    fn fork_then_exec_builds_the_tree_and_the_previous_executable() {
        let mut cache = cache();
        let mut exec = record(RECORD_LIFECYCLE, LIFE_EXEC, 10, 1);
        exec.path = b"/bin/sh".to_vec();
        cache.observe(&exec);
        let mut fork = record(RECORD_LIFECYCLE, LIFE_FORK, 10, 1);
        fork.head.child_tgid = 11;
        fork.head.ktime_ns = 5_000;
        cache.observe(&fork);
        let mut exec = record(RECORD_LIFECYCLE, LIFE_EXEC, 11, 10);
        exec.head.flags = EV_ARGS;
        let mut path = b"/usr/bin/curl".to_vec();
        path.resize(ARGS_OFFSET as usize, 0);
        path.extend_from_slice(b"curl\0-s\0http://x\0");
        exec.path = path;
        let child = cache.observe(&exec);
        assert_eq!(child.executable.as_deref(), Some("/usr/bin/curl"));
        assert_eq!(child.args, ["curl", "-s", "http://x"]);
        assert_eq!(child.previous, [Exec { executable: "/bin/sh".into(), args: vec![] }]);
        assert_eq!(child.start_boot_ns, 5_000);
        let ancestors: Vec<u32> = cache.ancestors(11).iter().map(|p| p.pid).collect();
        assert_eq!(ancestors, [10]);
    }

    #[test]
    fn a_new_session_is_seen_without_its_setsid_record() -> Result<(), String> {
        let mut cache = cache();
        let mut exec = record(RECORD_LIFECYCLE, LIFE_EXEC, 10, 1);
        exec.path = b"/bin/sh".to_vec();
        let before = cache.observe(&exec);
        assert_eq!((before.sid, before.pgid), (1, 0));
        // The next record after setsid() carries the new session: the
        // process leads it and its own process group.
        let mut fork = record(RECORD_LIFECYCLE, LIFE_FORK, 10, 1);
        fork.head.sid = 10;
        fork.head.child_tgid = 11;
        let after = cache.observe(&fork);
        assert_eq!((after.sid, after.pgid), (10, 10));
        let child = cache.get(11).ok_or("no child")?;
        assert_eq!((child.sid, child.pgid), (10, 10));
        // A record of a session the process does not lead changes no group.
        let mut exec = record(RECORD_LIFECYCLE, LIFE_EXEC, 12, 1);
        exec.head.sid = 7;
        assert_eq!(cache.observe(&exec).pgid, 0);
        Ok(())
    }

    #[test]
    fn relative_exec_names_are_joined_with_the_working_directory() {
        assert_eq!(join("/app", "./bin/../run"), "/app/run");
        assert_eq!(join("/", "x"), "/x");
    }

    #[test]
    fn exit_codes_and_signals() {
        assert_eq!(exit_status(3 << 8), 3);
        assert_eq!(exit_status(9), 137);
        let mut cache = cache();
        let mut exit = record(RECORD_LIFECYCLE, LIFE_EXIT, 12, 1);
        exit.head.child_tgid = 1 << 8;
        assert_eq!(cache.observe(&exit).exit_code, Some(1));
    }

    #[test]
    fn the_cache_is_bounded_and_sheds_ended_processes_first() {
        let mut cache = ProcessCache::new(16, PathBuf::from("/nonexistent-proc"));
        for pid in 100..116 {
            cache.observe(&record(RECORD_DECISION, 0, pid, 1));
        }
        let mut exit = record(RECORD_LIFECYCLE, LIFE_EXIT, 100, 1);
        exit.head.child_tgid = 0;
        cache.observe(&exit);
        cache.observe(&record(RECORD_DECISION, 0, 200, 1));
        assert_eq!(cache.len(), 16);
        assert!(cache.get(100).is_none() && cache.get(200).is_some() && cache.get(101).is_some());
    }

    #[test]
    fn stat_fields_survive_odd_commands() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0";
        let f = stat_fields(stat).unwrap_or_default();
        assert_eq!(f.first(), Some(&"S"));
        assert_eq!(f.get(2), Some(&"42"));
        assert_eq!(f.get(19), Some(&"12345"));
    }
}
