//! The process cache: what is known of each container process, kept from
//! the probes' lifecycle records (fork, exec, exit, setsid) and completed
//! from `/proc` for processes that started before the daemon.
//!
//! In: decoded events ([`Event`]) in record order. Out: per process, its ancestry and
//! the facts the ECS `process.*` fields need (executable, args, working
//! directory, start time, ids, interactivity, previous executables).
//!
//! Invariants: the cache is bounded ([`ProcessCache::new`]'s capacity,
//! ended processes first out); a lookup never fails, it returns what is
//! known (the record's own fields at least). Processes are shared
//! (`Arc`), so that a record costs no copy of a process's arguments and
//! history, and a process's serialised members ([`Process::ecs_json`])
//! outlive the record that asked for them.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap as HashMap;

use crate::event::{Event, Task};

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
    /// A cache of its program's members as the documents write them
    /// (arguments, working directory, previous programs): filled by
    /// [`crate::ecs`] on first use, emptied by the cache whenever a field
    /// it holds changes (an exec; a forked child starts without).
    pub ecs_json: OnceLock<crate::ecs::ProcessJson>,
    /// A cache of its identity's members (`entity_id`, `start`, user and
    /// group ids), which an exec keeps: emptied when its ids change.
    pub ecs_identity: OnceLock<String>,
    /// A cache of the top-level `user` and `group` members of documents
    /// about it, with the names they were written with: emptied when its
    /// ids change.
    pub ecs_people: OnceLock<(crate::users::Names, String)>,
}

impl Process {
    /// Takes the ids every record carries (they may have changed since the
    /// process was cached: a reparenting, a setuid, a cgroup move).
    fn refresh(&mut self, task: &Task) {
        if (self.uid, self.gid) != (task.uid, task.gid) {
            self.ecs_identity.take();
            self.ecs_people.take();
        }
        self.ppid = task.ppid;
        // Only setsid() changes a process's session, making it the leader
        // of a new session and process group: seen here as well as in the
        // setsid record, which a kernel may refuse the daemon (the probes'
        // OPTIONAL_TRACEPOINTS).
        if task.sid != self.sid && task.sid == task.tgid {
            self.pgid = task.tgid;
        }
        self.sid = task.sid;
        self.uid = task.uid;
        self.gid = task.gid;
        self.cgroup_id = task.cgroup_id;
    }

    /// The child `child` of a fork by `task`: a copy of this process with
    /// its own pid and start, and no history. It has the terminal the
    /// forker has at the fork (the record's), which is not always the one
    /// the forker had at its exec: a process may take a controlling
    /// terminal after it (setsid, then open a tty).
    fn forked(&self, task: &Task, child: u32) -> Process {
        Process {
            pid: child,
            ppid: task.tgid,
            start_boot_ns: task.ktime_ns,
            interactive: task.interactive,
            previous: Vec::new(),
            exit_code: None,
            ecs_json: OnceLock::new(),
            ecs_identity: OnceLock::new(),
            ecs_people: OnceLock::new(),
            ..self.clone()
        }
    }

    /// This process as it would be had it run `executable` as `name`
    /// with `args`: what the document of an exec that did not happen (a
    /// refused one) describes. The current program becomes a previous one.
    pub fn running(&self, executable: &str, name: &str, args: Vec<String>) -> Process {
        let mut process = Process { ecs_json: OnceLock::new(), ..self.clone() };
        process.replace_program(executable.to_owned(), name.to_owned(), args);
        process
    }

    /// Runs `executable` with `args`: the current program becomes a
    /// previous one.
    fn replace_program(&mut self, executable: String, name: String, args: Vec<String>) {
        if let Some(old) = self.executable.take() {
            self.previous.push(Exec { executable: old, args: std::mem::take(&mut self.args) });
            if self.previous.len() > MAX_PREVIOUS {
                self.previous.remove(0);
            }
        }
        self.executable = Some(executable);
        self.name = name;
        self.args = args;
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
        ProcessCache { processes: HashMap::default(), ended: VecDeque::new(), capacity: capacity.max(16), proc_root }
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

    /// The process `pid`, shared, if cached.
    pub fn shared(&self, pid: u32) -> Option<Arc<Process>> {
        self.processes.get(&pid).cloned()
    }

    /// Applies a lifecycle event (fork, exec, exit, setsid); any other
    /// event only makes sure its process is known and refreshes its ids
    /// (parent, session, user, group, cgroup). An exec's executable and
    /// arguments move into the process (the event keeps its task and
    /// name). Returns the process the event is about (for a fork, the
    /// forker; the child is [`ProcessCache::shared`]), shared with the
    /// cache: holding it across the next `observe` of the same process
    /// costs that `observe` a copy of the process.
    pub fn observe(&mut self, event: &mut Event) -> Arc<Process> {
        // Read before the process is borrowed from the map.
        let exec = match event {
            Event::Exec(exec) => {
                let tgid = exec.task.tgid;
                let args = exec.args.take().or_else(|| read_args(&self.proc_root, tgid)).unwrap_or_default();
                // The working directory as the new program starts in it:
                // read now, as a container's first process only enters its
                // root just before it execs its entrypoint.
                let cwd = container_path(&self.proc_root.join(tgid.to_string()), "cwd");
                let executable = std::mem::take(&mut exec.executable);
                Some((executable, exec.resolved, exec.name.text(), args, cwd))
            }
            _ => None,
        };
        let event = &*event;
        let task = event.task();
        let exec_now = exec.is_some();
        let slot =
            self.processes.entry(task.tgid).or_insert_with(|| Arc::new(read_proc(&self.proc_root, task, exec_now)));
        // Unshared unless the caller still holds the previous result.
        let process = Arc::make_mut(slot);
        process.refresh(task);
        let mut child = None;
        match event {
            Event::Fork(fork) => child = Some(process.forked(task, fork.child)),
            Event::Exit(exit) => {
                process.exit_code = Some(exit.code);
                self.ended.push_back(task.tgid);
            }
            Event::Setsid(_) => {
                process.sid = task.tgid;
                process.pgid = task.tgid;
            }
            _ => {}
        }
        if let Some((executable, resolved, name, args, cwd)) = exec {
            if cwd.is_some() {
                process.working_directory = cwd;
            }
            // The name exec was given (the file is not reachable from the
            // task's root) may be relative: it is the working directory's.
            // A memfd's (`memfd:NAME`) is no path.
            let relative = !resolved && !executable.starts_with('/') && !executable.starts_with("memfd:");
            let executable = if relative {
                join(process.working_directory.as_deref().unwrap_or("/"), &executable)
            } else {
                executable
            };
            process.replace_program(executable, name, args);
            process.interactive = task.interactive;
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

/// A process from `<proc_root>/<tgid>`, with the event's ids (the
/// kernel's at the event); the event's fields alone when `/proc` has it
/// no more (a short-lived process that started before the daemon).
/// Without a working directory: a process first seen by a record may be a
/// container's first, which has not entered the container's root yet (its
/// exec, which does, reads it). `exec`: first seen by its exec.
fn read_proc(proc_root: &Path, task: &Task, exec: bool) -> Process {
    let mut process = from_proc(proc_root, task.tgid, task.cgroup_id).unwrap_or_else(|| Process {
        pid: task.tgid,
        start_boot_ns: task.ktime_ns,
        name: task.comm.text(),
        interactive: task.interactive,
        cgroup_id: task.cgroup_id,
        ..Process::default()
    });
    if exec {
        // `/proc` shows the new program already, which the exec event
        // brings itself: what ran before is unknown, not that.
        process.executable = None;
        process.args.clear();
    }
    process.refresh(task);
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
        ecs_identity: OnceLock::new(),
        ecs_people: OnceLock::new(),
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
    use crate::event::encode;
    use d4c_artifact::ops::{Actions, Operation};

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

    fn event(record: &d4c_kernel_probes::probes::Record) -> Event {
        crate::event::decode(record)
    }

    fn lifecycle(tgid: u32, op: u32, value: u32) -> Event {
        event(&encode::lifecycle(tgid, op, value))
    }

    fn cache() -> ProcessCache {
        ProcessCache::new(64, PathBuf::from("/nonexistent-proc"))
    }

    /// Regression (issue 12, found by the VM's scenario
    /// `deploy-drift-prevention.d4ct:62`): a process that took a terminal
    /// after its exec (setsid, then opened a pty) forked a child whose
    /// documents said `process.interactive: false`, the forker's state at
    /// its exec.
    #[test]
    fn regression_issue12_a_fork_after_taking_a_terminal_is_interactive() {
        let mut cache = cache();
        cache.observe(&mut event(&encode::exec(10, "/usr/sbin/nginx", "nginx", None)));
        assert_eq!(cache.get(10).map(|p| p.interactive), Some(false));
        let mut fork = encode::lifecycle(10, encode::FORK, 11);
        fork.head.flags |= encode::INTERACTIVE;
        cache.observe(&mut event(&fork));
        assert_eq!(cache.get(11).map(|p| p.interactive), Some(true));
        // The forker's own documents keep what its exec said.
        assert_eq!(cache.get(10).map(|p| p.interactive), Some(false));
    }

    #[test]
    fn fork_then_exec_builds_the_tree_and_the_previous_executable() {
        let mut cache = cache();
        cache.observe(&mut event(&encode::exec(10, "/bin/sh", "sh", None)));
        let mut fork = encode::lifecycle(10, encode::FORK, 11);
        fork.head.ktime_ns = 5_000;
        let forker = cache.observe(&mut event(&fork));
        assert_eq!(forker.pid, 10);
        assert_eq!(cache.shared(11).map(|c| c.start_boot_ns), Some(5_000));
        let mut exec = encode::exec(11, "/usr/bin/curl", "curl", Some(&["curl", "-s", "http://x"]));
        exec.head.ppid = 10;
        let child = cache.observe(&mut event(&exec));
        assert_eq!(child.executable.as_deref(), Some("/usr/bin/curl"));
        assert_eq!(child.args, ["curl", "-s", "http://x"]);
        assert_eq!(child.previous, [Exec { executable: "/bin/sh".into(), args: vec![] }]);
        assert_eq!(child.start_boot_ns, 5_000);
        let ancestors: Vec<u32> = cache.ancestors(11).iter().map(|p| p.pid).collect();
        assert_eq!(ancestors, [10]);
        // What a refused exec's document describes: the program refused,
        // the current one as the previous.
        let refused = child.running("/tmp/x", "x", vec!["x".into()]);
        assert_eq!(refused.executable.as_deref(), Some("/tmp/x"));
        assert_eq!(refused.previous.last().map(|p| p.executable.as_str()), Some("/usr/bin/curl"));
        assert_eq!(cache.get(11).and_then(|p| p.executable.as_deref()), Some("/usr/bin/curl"));
    }

    #[test]
    fn a_new_session_is_seen_without_its_setsid_record() -> Result<(), String> {
        let mut cache = cache();
        let mut exec = encode::exec(10, "/bin/sh", "sh", None);
        exec.head.sid = 1;
        let before = cache.observe(&mut event(&exec));
        assert_eq!((before.sid, before.pgid), (1, 0));
        // The next record after setsid() carries the new session: the
        // process leads it and its own process group.
        let mut fork = encode::lifecycle(10, encode::FORK, 11);
        fork.head.sid = 10;
        let after = cache.observe(&mut event(&fork));
        assert_eq!((after.sid, after.pgid), (10, 10));
        let child = cache.get(11).ok_or("no child")?;
        assert_eq!((child.sid, child.pgid), (10, 10));
        // A record of a session the process does not lead changes no group.
        let mut exec = encode::exec(12, "/bin/sh", "sh", None);
        exec.head.sid = 7;
        assert_eq!(cache.observe(&mut event(&exec)).pgid, 0);
        Ok(())
    }

    #[test]
    fn relative_exec_names_are_joined_with_the_working_directory() {
        assert_eq!(join("/app", "./bin/../run"), "/app/run");
        assert_eq!(join("/", "x"), "/x");
    }

    #[test]
    fn exit_codes_and_signals() {
        let mut cache = cache();
        assert_eq!(cache.observe(&mut lifecycle(12, encode::EXIT, 1 << 8)).exit_code, Some(1));
        assert_eq!(cache.observe(&mut lifecycle(13, encode::EXIT, 9)).exit_code, Some(137));
    }

    #[test]
    fn the_cache_is_bounded_and_sheds_ended_processes_first() {
        let mut cache = ProcessCache::new(16, PathBuf::from("/nonexistent-proc"));
        let decision =
            |pid| event(&encode::decision(pid, encode::HOOK_FILE_OPEN, Operation::ModifyFile, "/x", Actions::LOG));
        for pid in 100..116 {
            cache.observe(&mut decision(pid));
        }
        cache.observe(&mut lifecycle(100, encode::EXIT, 0));
        cache.observe(&mut decision(200));
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
