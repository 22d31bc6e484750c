//! User and group names as a container knows them: from its own
//! `/etc/passwd` and `/etc/group`, read through a process's root
//! (`<proc>/<pid>/root/etc/...`), once per container.
//!
//! In: a container (its cgroup id), processes of it that may be running,
//! and a user and group id. Out: their names, when the container's files
//! name them (the top-level `user.name` and `group.name`).
//!
//! Invariants: every read is bounded ([`MAX_FILE_BYTES`] per file); a
//! container's files are read at most once per [`RETRY_NS`] (when they
//! could not be read, or did not name an id asked for: a user added since);
//! at most [`MAX_CONTAINERS`] containers are kept.

use rustc_hash::FxHashMap as HashMap;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The most bytes read of a container's `/etc/passwd` or `/etc/group`.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// How long a container's files are not read again (boot clock), after a
/// failed read or an id they did not name.
pub const RETRY_NS: u64 = 30_000_000_000;

/// How many containers' names are kept; past it, the cache starts over.
pub const MAX_CONTAINERS: usize = 1024;

/// How many of a container's processes are tried, at most, for a root to
/// read its files through.
pub const MAX_PIDS_TRIED: usize = 8;

/// A user's and a group's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// The user's name.
    pub user: Option<Arc<str>>,
    /// The group's name.
    pub group: Option<Arc<str>>,
}

/// Names by id.
type Ids = HashMap<u32, Arc<str>>;

/// One container's names.
#[derive(Debug, Default)]
struct Known {
    users: Ids,
    groups: Ids,
    /// When the files were last read (or tried).
    read_at: Option<u64>,
}

/// The names of every container seen.
#[derive(Debug)]
pub struct UserNames {
    proc_root: PathBuf,
    containers: HashMap<u64, Known>,
}

impl UserNames {
    /// An empty cache, reading processes' roots below `proc_root`.
    pub fn new(proc_root: PathBuf) -> UserNames {
        UserNames { proc_root, containers: HashMap::default() }
    }

    /// The names of user `uid` and group `gid` in the container of cgroup
    /// `cgroup_id`, at boot-clock time `now_ns`; `pids`: processes of the
    /// container, the likeliest to run first (the files are read through
    /// the first whose root can be read).
    pub fn names(
        &mut self,
        cgroup_id: u64,
        pids: impl IntoIterator<Item = u32>,
        uid: u32,
        gid: u32,
        now_ns: u64,
    ) -> Names {
        if self.containers.len() >= MAX_CONTAINERS && !self.containers.contains_key(&cgroup_id) {
            self.containers.clear();
        }
        let known = self.containers.entry(cgroup_id).or_default();
        let lookup =
            |known: &Known| Names { user: known.users.get(&uid).cloned(), group: known.groups.get(&gid).cloned() };
        let names = lookup(known);
        let complete = names.user.is_some() && names.group.is_some();
        let due = known.read_at.is_none_or(|at| now_ns.saturating_sub(at) >= RETRY_NS);
        if complete || !due {
            return names;
        }
        known.read_at = Some(now_ns);
        for pid in pids.into_iter().take(MAX_PIDS_TRIED) {
            let root = self.proc_root.join(pid.to_string()).join("root");
            if let Some((users, groups)) = read_files(&root) {
                known.users = users;
                known.groups = groups;
                break;
            }
        }
        lookup(known)
    }

    /// Forgets a container (it ended).
    pub fn forget(&mut self, cgroup_id: u64) {
        self.containers.remove(&cgroup_id);
    }
}

/// A container's `/etc/passwd` as `(id, name)` pairs in file order, read
/// from its root file system `rootfs` (the bundle's `root.path`, the
/// overlay mount the runtime made): what user conditions decide on. No file
/// (a distroless image) names no one. An error when the root itself cannot
/// be opened, or `/etc/passwd` is there but not a regular file or cannot
/// be read: the caller cannot tell which names the container knows.
pub fn read_passwd(rootfs: &Path) -> Result<Vec<(u32, String)>, String> {
    let dir = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("cannot open the container's root file system `{}`: {e}", rootfs.display()))?;
    match read_in_root(&dir, "etc/passwd") {
        Ok(text) => Ok(passwd_lines(&text).map(|(id, name)| (id, name.to_string())).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read `{}/etc/passwd`: {e}", rootfs.display())),
    }
}

/// The users and groups `root/etc/passwd` and `root/etc/group` name; `None`
/// when neither can be read (the process is gone). A file that cannot be
/// read names none.
fn read_files(root: &Path) -> Option<(Ids, Ids)> {
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let passwd = read_bounded(&dir, "etc/passwd");
    let group = read_bounded(&dir, "etc/group");
    if passwd.is_none() && group.is_none() {
        return None;
    }
    Some((ids(passwd.as_deref().unwrap_or_default()), ids(group.as_deref().unwrap_or_default())))
}

/// At most [`MAX_FILE_BYTES`] of the regular file `path` below `root` (a
/// container's root directory), as text (lossy). The path is resolved as
/// if `root` were `/` (`openat2`'s `RESOLVE_IN_ROOT`): a symbolic link the
/// container made cannot lead out of it. Opened without blocking, and
/// read only when it is a regular file (not a FIFO or a device).
fn read_bounded(root: &OwnedFd, path: &str) -> Option<String> {
    read_in_root(root, path).ok()
}

/// [`read_bounded`], saying why it could not read: `NotFound` when there is
/// no such file, `InvalidInput` when it is not a regular file.
fn read_in_root(root: &OwnedFd, path: &str) -> std::io::Result<String> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let file = std::fs::File::from(rustix::fs::openat2(root, path, flags, Mode::empty(), resolve)?);
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `name:password:id:...` lines: id to name, the first line of an id
/// winning (as getpwuid finds it). Lines that are not such are skipped.
fn ids(text: &str) -> Ids {
    let mut out = HashMap::default();
    for (id, name) in passwd_lines(text) {
        out.entry(id).or_insert_with(|| Arc::from(name));
    }
    out
}

/// The `(id, name)` of each `name:password:id:...` line, in order; lines
/// that are not such (comments, NIS `+`/`-` entries) are skipped.
fn passwd_lines(text: &str) -> impl Iterator<Item = (u32, &str)> {
    text.lines().filter_map(|line| {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else { return None };
        let id = id.trim().parse::<u32>().ok()?;
        let odd = name.is_empty() || name.starts_with('#') || name.starts_with('+') || name.starts_with('-');
        (!odd).then_some((id, name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(dir: &Path, pid: u32, passwd: &str, group: &str) -> std::io::Result<()> {
        let etc = dir.join(pid.to_string()).join("root/etc");
        std::fs::create_dir_all(&etc)?;
        std::fs::write(etc.join("passwd"), passwd)?;
        std::fs::write(etc.join("group"), group)
    }

    #[test]
    fn names_come_from_the_containers_own_files() -> std::io::Result<()> {
        let proc = tempfile::tempdir()?;
        container(
            proc.path(),
            41,
            "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n",
            "root:x:0:\nwww-data:x:33:\n",
        )?;
        container(proc.path(), 42, "nginx:x:0:0::/:/bin/sh\n", "nginx:x:0:\n")?;
        let mut names = UserNames::new(proc.path().to_path_buf());
        let n = names.names(1, [40, 41], 33, 33, 0);
        assert_eq!((n.user.as_deref(), n.group.as_deref()), (Some("www-data"), Some("www-data")));
        // Another container, another file: uid 0 has another name there.
        let n = names.names(2, [42], 0, 0, 0);
        assert_eq!(n.user.as_deref(), Some("nginx"));
        // A link the container made cannot lead out of its root.
        let etc = proc.path().join("43/root/etc");
        std::fs::create_dir_all(&etc)?;
        std::os::unix::fs::symlink(proc.path().join("41/root/etc/passwd"), etc.join("passwd"))?;
        assert_eq!(names.names(3, [43], 33, 33, 0), Names::default());
        // Cached: the process gone, the names stay.
        std::fs::remove_dir_all(proc.path().join("41"))?;
        assert_eq!(names.names(1, [41], 0, 0, 1).user.as_deref(), Some("root"));
        // An id the files do not name: read again only after RETRY_NS.
        container(proc.path(), 41, "late:x:1000:1000::/:/bin/sh\n", "late:x:1000:\n")?;
        assert_eq!(names.names(1, [41], 1000, 1000, 2).user, None);
        assert_eq!(names.names(1, [41], 1000, 1000, 2 + RETRY_NS).user.as_deref(), Some("late"));
        names.forget(1);
        assert_eq!(names.names(1, [99], 1000, 1000, 3 + RETRY_NS), Names::default());
        Ok(())
    }

    #[test]
    fn passwd_is_read_from_the_root_file_system_and_stays_inside_it() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc"))?;
        // No passwd: a distroless image names no one.
        assert_eq!(read_passwd(&rootfs), Ok(Vec::new()));
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n# c\napp:x:1000:1000::/:/bin/sh\n")?;
        assert_eq!(read_passwd(&rootfs), Ok(vec![(0, "root".to_string()), (1000, "app".to_string())]));
        // A link the container made resolves inside its root: to nothing.
        std::fs::remove_file(rootfs.join("etc/passwd"))?;
        std::fs::write(dir.path().join("outside"), "evil:x:0:0::/:/bin/sh\n")?;
        std::os::unix::fs::symlink("../../outside", rootfs.join("etc/passwd"))?;
        assert_eq!(read_passwd(&rootfs), Ok(Vec::new()));
        // A root that cannot be opened is an error, not "no one".
        assert!(read_passwd(&dir.path().join("missing")).is_err());
        Ok(())
    }

    #[test]
    fn odd_lines_are_skipped_and_the_first_name_of_an_id_wins() {
        let ids = ids("# comment\n+nis\nbad\nroot:x:0:0\ntoor:x:0:0\nx:x:notanumber:0\n::7:\ndaemon:*:1:1\n");
        assert_eq!(ids.get(&0).map(|n| &**n), Some("root"));
        assert_eq!(ids.get(&1).map(|n| &**n), Some("daemon"));
        assert_eq!(ids.len(), 2);
    }
}
