//! What a staged actor is and what it performs: the ops the guest sends
//! to a container's agent ([`AgentOp`]), the actor that performs them
//! ([`Actor`]) and what came of it ([`Outcome`]). Independent of how the
//! container was made.

use std::fmt;

/// A process that performs one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Its executable, an absolute container path (`/proc/self/exe`).
    pub exe: String,
    /// Its `comm` when not the executable's basename (the kernel keeps 15
    /// bytes).
    pub name: Option<String>,
    /// Whether it leads a session with a controlling terminal (else it
    /// leads one without).
    pub interactive: bool,
    /// The user it acts as (0: root), keeping its capabilities
    /// (`sys::become_user`).
    pub uid: u32,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.exe)?;
        if let Some(name) = &self.name {
            write!(f, " name {name:?}")?;
        }
        if self.interactive {
            write!(f, " interactive")?;
        }
        if self.uid != 0 {
            write!(f, " user {}", self.uid)?;
        }
        Ok(())
    }
}

/// One operation, performed by a staged actor as one syscall (`MemfdExec`:
/// the three its definition names). Paths are container paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOp {
    /// `open(path, O_CREAT|O_EXCL|O_WRONLY, mode)` under umask 0.
    Create {
        /// The new file.
        path: String,
        /// Its exact mode.
        mode: u32,
    },
    /// `open(path, O_WRONLY)`.
    Write(String),
    /// `truncate(path, 0)`.
    Truncate(String),
    /// `chmod(path, mode)`.
    Chmod {
        /// The file.
        path: String,
        /// Its new mode.
        mode: u32,
    },
    /// `mknod(path, S_IFREG | mode, 0)` under umask 0.
    Mknod {
        /// The new file.
        path: String,
        /// Its exact mode.
        mode: u32,
    },
    /// `rename(from, to)`.
    Rename {
        /// The source.
        from: String,
        /// The destination.
        to: String,
    },
    /// `setxattr(path, "system.posix_acl_access", ...)`: the minimal access
    /// ACL whose entries give the permission bits `mode`.
    Setfacl {
        /// The file.
        path: String,
        /// The permission bits.
        mode: u32,
    },
    /// `renameat2(a, b, RENAME_EXCHANGE)`: the two names swap their files.
    Exchange {
        /// One name.
        a: String,
        /// The other.
        b: String,
    },
    /// `link(from, to)`.
    Link {
        /// The existing file.
        from: String,
        /// The new name.
        to: String,
    },
    /// `unlink(path)`.
    Unlink(String),
    /// `execve(path, [path, "noop", fd], {})` by the actor itself; success
    /// means the new image ran and said so.
    Exec(String),
    /// `fork()`; the child `_exit(0)`s at once and the actor reaps it.
    Fork,
    /// The benchmark's workload, not one syscall: `iterations` times, in
    /// directory `dir`, create a file, write to it, chmod it, unlink it,
    /// and fork a child that execs `exe` (which runs `noop`). The detail
    /// is `ns=N`, the loop's wall time.
    Workload {
        /// The directory (it must exist).
        dir: String,
        /// The executable the children exec.
        exe: String,
        /// Loop count.
        iterations: u32,
    },
    /// `memfd_create(name, MFD_CLOEXEC)`, this binary written into it, and
    /// `execveat(fd, "", [name, "noop", fd], {}, AT_EMPTY_PATH)`.
    MemfdExec(String),
    /// `symlink(target, link)`.
    Symlink {
        /// What the link points to.
        target: String,
        /// The new link.
        link: String,
    },
    /// `mkdir(path, mode)` under umask 0.
    Mkdir {
        /// The new directory.
        path: String,
        /// Its exact mode.
        mode: u32,
    },
    /// `chdir(path)`: the working directory of the later ops of its
    /// [`AgentOp::Sequence`] (relative paths reach below PATH_MAX).
    Chdir(String),
    /// `mount(from, to, NULL, MS_BIND, NULL)`: a second path to a
    /// directory, in the container's mount namespace (the container has
    /// `CAP_SYS_ADMIN`).
    BindMount {
        /// The directory.
        from: String,
        /// Where it is also seen (an existing directory).
        to: String,
    },
    /// `open(dir, O_TMPFILE | O_RDWR, mode)` under umask 0: a file with no
    /// name, the *open file* of the later ops of its [`AgentOp::Sequence`].
    OpenTmpfile {
        /// The directory whose file system holds it.
        dir: String,
        /// Its exact mode.
        mode: u32,
    },
    /// `fchmod(open file, mode)`.
    ChmodOpen(u32),
    /// A name for the open file: `linkat` as `via` says.
    LinkOpen {
        /// The new name.
        to: String,
        /// Which form of `linkat`.
        via: LinkVia,
    },
    /// The ops in order, in one staged process, stopping at the first that
    /// fails: for what needs process state (a working directory, an open
    /// file) or set-up inside the container. [`Outcome::completed`] says
    /// how far it got. Sequences do not nest.
    Sequence(Vec<AgentOp>),
}

/// How [`AgentOp::LinkOpen`] names the open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkVia {
    /// `linkat(fd, "", AT_FDCWD, to, AT_EMPTY_PATH)`.
    EmptyPath,
    /// `linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, to,
    /// AT_SYMLINK_FOLLOW)`.
    ProcFd,
}

impl LinkVia {
    /// The protocol's word for it.
    pub fn word(self) -> &'static str {
        match self {
            LinkVia::EmptyPath => "empty-path",
            LinkVia::ProcFd => "proc-fd",
        }
    }

    /// Inverse of [`LinkVia::word`].
    pub fn from_word(word: &str) -> Option<LinkVia> {
        [LinkVia::EmptyPath, LinkVia::ProcFd].into_iter().find(|v| v.word() == word)
    }
}

impl fmt::Display for AgentOp {
    /// The op as a scenario step writes it, e.g. `create "/x" mode 0644`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentOp::Create { path, mode } => write!(f, "create {path:?} mode {mode:04o}"),
            AgentOp::Write(path) => write!(f, "write {path:?}"),
            AgentOp::Truncate(path) => write!(f, "truncate {path:?}"),
            AgentOp::Chmod { path, mode } => write!(f, "chmod {path:?} {mode:04o}"),
            AgentOp::Mknod { path, mode } => write!(f, "mknod {path:?} mode {mode:04o}"),
            AgentOp::Rename { from, to } => write!(f, "rename {from:?} to {to:?}"),
            AgentOp::Exchange { a, b } => write!(f, "exchange {a:?} with {b:?}"),
            AgentOp::Setfacl { path, mode } => write!(f, "setfacl {path:?} {mode:04o}"),
            AgentOp::Link { from, to } => write!(f, "link {from:?} to {to:?}"),
            AgentOp::Unlink(path) => write!(f, "unlink {path:?}"),
            AgentOp::Exec(path) => write!(f, "exec {path:?}"),
            AgentOp::Fork => write!(f, "fork"),
            AgentOp::Workload { dir, exe, iterations } => write!(f, "workload {dir:?} {exe:?} {iterations}"),
            AgentOp::MemfdExec(name) => write!(f, "memfd-exec {name:?}"),
            AgentOp::Symlink { target, link } => write!(f, "symlink {target:?} to {link:?}"),
            AgentOp::Mkdir { path, mode } => write!(f, "mkdir {path:?} mode {mode:04o}"),
            AgentOp::Chdir(path) => write!(f, "chdir {path:?}"),
            AgentOp::BindMount { from, to } => write!(f, "bind-mount {from:?} on {to:?}"),
            AgentOp::OpenTmpfile { dir, mode } => write!(f, "open-tmpfile {dir:?} mode {mode:04o}"),
            AgentOp::ChmodOpen(mode) => write!(f, "chmod-open {mode:04o}"),
            AgentOp::LinkOpen { to, via } => write!(f, "link-open {} to {to:?}", via.word()),
            AgentOp::Sequence(ops) => {
                // A long sequence (a deep directory chain) is shown by its
                // ends, so that messages stay readable.
                let show = |ops: &[AgentOp]| ops.iter().map(ToString::to_string).collect::<Vec<_>>();
                let shown = match (ops.get(..3), ops.len().checked_sub(2).and_then(|at| ops.get(at..))) {
                    (Some(head), Some(tail)) if ops.len() > 6 => [show(head), vec!["...".into()], show(tail)].concat(),
                    _ => show(ops),
                };
                write!(f, "sequence of {}: {}", ops.len(), shown.join("; "))
            }
        }
    }
}

impl AgentOp {
    /// Every path or name the op passes to the kernel.
    pub(crate) fn strings(&self) -> Vec<&str> {
        match self {
            AgentOp::Create { path, .. }
            | AgentOp::Write(path)
            | AgentOp::Truncate(path)
            | AgentOp::Chmod { path, .. }
            | AgentOp::Setfacl { path, .. }
            | AgentOp::Mknod { path, .. }
            | AgentOp::Unlink(path)
            | AgentOp::Exec(path)
            | AgentOp::MemfdExec(path) => vec![path],
            AgentOp::Rename { from, to } | AgentOp::Link { from, to } => vec![from, to],
            AgentOp::Exchange { a, b } => vec![a, b],
            AgentOp::Fork | AgentOp::ChmodOpen(_) => vec![],
            AgentOp::Workload { dir, exe, .. } => vec![dir, exe],
            AgentOp::Mkdir { path, .. } | AgentOp::Chdir(path) | AgentOp::OpenTmpfile { dir: path, .. } => vec![path],
            AgentOp::LinkOpen { to, .. } => vec![to],
            AgentOp::Symlink { target, link } => vec![target, link],
            AgentOp::BindMount { from, to } => vec![from, to],
            AgentOp::Sequence(ops) => ops.iter().flat_map(AgentOp::strings).collect(),
        }
    }

    /// How many calls it makes: a [`AgentOp::Sequence`]'s length, else 1.
    pub fn calls(&self) -> u32 {
        match self {
            AgentOp::Sequence(ops) => u32::try_from(ops.len()).unwrap_or(u32::MAX),
            _ => 1,
        }
    }
}

/// What one op did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The syscall's errno: 0 on success (for exec ops: the new image ran).
    /// `-1` when the actor was killed before it could report
    /// (`killed_by` says by what).
    pub errno: i32,
    /// The signal that ended the actor during or right after its op, if
    /// one did (it exits by itself otherwise).
    pub killed_by: Option<i32>,
    /// For `Exec` and `MemfdExec` that succeeded: the `comm` the kernel
    /// gave the new image, as the image itself read it
    /// (`prctl(PR_GET_NAME)`). Kernels differ for `MemfdExec`: the fd
    /// number or the memfd's name.
    pub exec_comm: Option<String>,
    /// What happened, for messages (e.g. `open(O_WRONLY) `/x`: Operation
    /// not permitted (os error 1)`).
    pub detail: String,
    /// How many of the op's calls succeeded ([`AgentOp::calls`] when
    /// `errno` is 0): for a [`AgentOp::Sequence`] that failed, the index
    /// of the op that failed.
    pub completed: u32,
}
