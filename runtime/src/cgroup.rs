//! Container identity from cgroups: the userspace side.
//!
//! In: cgroup paths as `/proc/<pid>/cgroup` shows them, the cgroup
//! filesystem, and `/proc/self/mountinfo`. Out: the Kubernetes container
//! a cgroup belongs to ([`parse_container_path`], [`ProcCgroup::container`]),
//! the kubepods roots below which every task is in some pod
//! ([`find_kubepods_roots`]), and the hierarchy whose ids the BPF side reads
//! ([`detect_hierarchy`]).
//!
//! The probes know a container by a cgroup id: the kernfs node id of the
//! cgroup's directory, which is the directory's inode number on 64-bit
//! kernels since 5.5 ("kernfs: convert kernfs_node->id from union
//! kernfs_node_id to u64"), hence [`cgroup_id`].
//!
//! # Layouts recognised
//!
//! Anything may come before the kubepods component (a kind node's
//! `/docker/<node>/`, a docker-in-docker `/system.slice/docker-<x>.scope/`,
//! kind's `/kubelet/`). The kubepods component is one of
//! [`KUBEPODS_ROOT_NAMES`]; its name gives the driver:
//!
//! - cgroupfs driver, root `kubepods`:
//!   `kubepods[/besteffort|/burstable]/pod<uid>/<leaf>`, where the leaf is
//!   a bare `<id>` (containerd, docker: the runtime is not named) or
//!   `crio-<id>` (CRI-O).
//! - systemd driver, root `R.slice` with `R` = `kubepods` or
//!   `kubelet-kubepods` (kubelet's `--cgroup-root=/kubelet.slice`):
//!   `R.slice[/R-<qos>.slice]/R[-<qos>]-pod<uid>.slice/<runtime>-<id>.scope`
//!   with `<runtime>` one of `cri-containerd`, `crio`, `docker`, and the
//!   pod uid's dashes written as underscores (a dash is systemd's level
//!   separator). Each slice must extend its parent's name, as systemd's do.
//!
//! No QoS level means Guaranteed.
//!
//! # Decisions
//!
//! - **Ids are exactly 64 lowercase hex digits.** containerd, CRI-O and
//!   docker all name a container by 32 random bytes in hex, and that is the
//!   only form that reaches a cgroup name. Accepting shorter hex would let
//!   any hex-named cgroup below a pod (one a container made itself) pass
//!   for a container.
//! - **Descendants of a container are that container**, with
//!   [`ContainerCgroup::depth_below_container`] saying how far below: a
//!   container that manages cgroups (cgroup namespaces, systemd inside,
//!   crun's `crio-<id>.scope/container` subgroup) runs its processes in
//!   children of its own cgroup.
//! - **The sandbox (pause) container is a container**: its cgroup looks like
//!   any other. Whether an id is a sandbox is for the caller to learn from
//!   the runtime's metadata. Helpers that are not containers have names that
//!   are not id-shaped (CRI-O's `crio-conmon-<id>`) and are refused.
//! - **Pod uids** are lowercase hex and dashes, at most 64 bytes: the
//!   API server's UUIDs and the 32-hex md5 uids kubelet gives static pods.
//! - **Nesting**: the first kubepods component from the left at which a
//!   whole layout parses wins, that is the kubelet nearest the reader's
//!   cgroup root. Pods of a kubelet running inside one of that kubelet's
//!   containers (kind in a pod) are descendants of the outer container.
//!   This matches [`find_kubepods_roots`], which does not look inside a
//!   kubepods root.
//! - **No path tricks**: a path must start with `/` and have no empty, `.`
//!   or `..` component. A task outside the reader's cgroup namespace shows
//!   as `/../..`; it is not classified.
//!
//! # Which hierarchy carries the ids
//!
//! On the unified hierarchy (cgroup v2) the BPF side reads
//! `bpf_get_current_cgroup_id`, and ids are inode numbers below the cgroup2
//! mount. That helper only reads the v2 hierarchy; on legacy (v1) and hybrid
//! nodes the BPF side reads the memory controller's cgroup
//! (`task->cgroups->subsys[memory_cgrp_id]->cgroup->kn->id`), and userspace
//! must take ids below the memory controller's mount
//! ([`Hierarchy::id_mount`]). Memory because kubelet refuses to start
//! without it and sets a memory cgroup for every pod and container, so every
//! container has one; it is mounted alone (unlike `cpu,cpuacct`, whose mount
//! name varies); and a controller is needed at all because a named hierarchy
//! like `name=systemd` has no `css` in `task->cgroups->subsys`. Hybrid nodes
//! use memory too: kubelet's layout lives on the v1 controllers there, and
//! whether a container's tasks are also placed in the controller-less
//! unified hierarchy depends on the runtime.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The names of the cgroup directories below which every task is in a pod:
/// the cgroupfs driver's, the systemd driver's, and the systemd driver's
/// under `--cgroup-root=/kubelet.slice`.
pub const KUBEPODS_ROOT_NAMES: [&str; 3] = ["kubepods", "kubepods.slice", "kubelet-kubepods.slice"];

/// The depth to give [`find_kubepods_roots`] unless you know better: deep
/// enough for `/system.slice/docker-<node>.scope/kubelet.slice/kubelet-kubepods.slice`
/// (a kind node seen from the host).
pub const DEFAULT_MAX_DEPTH: u32 = 4;

/// Length of a container id in a cgroup name.
pub const CONTAINER_ID_LEN: usize = 64;

/// Longest pod uid accepted.
const MAX_POD_UID_LEN: usize = 64;

/// The v1 hierarchies [`ProcCgroup::container`] tries, in order, when the
/// unified path is not a container's.
const V1_PREFERENCE: [&str; 4] = ["memory", "cpu", "pids", "name=systemd"];

/// The cgroup v1 controllers, as they appear in a v1 mount's options.
/// Named hierarchies (`name=...`) are recognised separately.
const V1_CONTROLLERS: [&str; 15] = [
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// The container runtime that named a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// containerd's CRI plugin: `cri-containerd-<id>.scope`.
    Containerd,
    /// CRI-O: `crio-<id>.scope`, or `crio-<id>` with the cgroupfs driver.
    CriO,
    /// Docker (dockershim, cri-dockerd): `docker-<id>.scope`.
    Docker,
}

/// kubelet's cgroup driver, as seen in the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    /// `kubepods.slice/kubepods-<qos>.slice/...`.
    Systemd,
    /// `kubepods/<qos>/...`.
    Cgroupfs,
}

/// A pod's quality of service class, the level between kubepods and the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// No level: the pod sits directly below kubepods.
    Guaranteed,
    /// `burstable`.
    Burstable,
    /// `besteffort`.
    BestEffort,
}

/// A cgroup that is a Kubernetes container's, or below one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerCgroup {
    /// `None` when the cgroupfs driver's leaf is a bare id (containerd and
    /// docker both write those).
    pub runtime: Option<Runtime>,
    /// The cgroup driver.
    pub driver: Driver,
    /// 64 lowercase hex digits ([`CONTAINER_ID_LEN`]).
    pub container_id: String,
    /// The pod's uid with its dashes (the systemd driver writes them as
    /// underscores). `Some` for every layout recognised today.
    pub pod_uid: Option<String>,
    /// The pod's QoS class.
    pub qos: QosClass,
    /// 0 for the container's own cgroup, 1 for a child of it, and so on.
    pub depth_below_container: u32,
}

/// Classifies a cgroup path, relative to its hierarchy's root and starting
/// with `/` (as in `/proc/<pid>/cgroup`). `None` for anything that is not a
/// container or below one: host cgroups, kubepods, QoS and pod levels,
/// CRI-O's conmon, malformed paths. See the module documentation for the
/// layouts and the decisions.
pub fn parse_container_path(path: &str) -> Option<ContainerCgroup> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return None;
    }
    let components: Vec<&str> = rest.split('/').collect();
    if components.iter().any(|c| matches!(*c, "" | "." | "..")) {
        return None;
    }
    components
        .iter()
        .enumerate()
        .filter(|(_, c)| KUBEPODS_ROOT_NAMES.contains(c))
        .find_map(|(i, _)| parse_from_root(components.get(i..)?))
}

/// Parses `components`, whose first is a kubepods root name.
fn parse_from_root(components: &[&str]) -> Option<ContainerCgroup> {
    let (root, rest) = components.split_first()?;
    if *root == "kubepods" {
        parse_cgroupfs(rest)
    } else {
        parse_systemd(root.strip_suffix(".slice")?, rest)
    }
}

/// `[besteffort|burstable/]pod<uid>/<leaf>[/...]`, below `kubepods`.
fn parse_cgroupfs(components: &[&str]) -> Option<ContainerCgroup> {
    let (first, rest) = components.split_first()?;
    let (qos, pod, rest) = match qos_level(first) {
        Some(qos) => {
            let (pod, rest) = rest.split_first()?;
            (qos, *pod, rest)
        }
        None => (QosClass::Guaranteed, *first, rest),
    };
    let uid = pod.strip_prefix("pod").filter(|uid| is_pod_uid(uid))?;
    let (leaf, below) = rest.split_first()?;
    let (runtime, id) = match leaf.strip_prefix("crio-") {
        Some(id) => (Some(Runtime::CriO), id),
        None => (None, *leaf),
    };
    container(runtime, Driver::Cgroupfs, id, uid.to_owned(), qos, below)
}

/// `[S-<qos>.slice/]S[-<qos>]-pod<uid>.slice/<runtime>-<id>.scope[/...]`,
/// below `S.slice`.
fn parse_systemd(stem: &str, components: &[&str]) -> Option<ContainerCgroup> {
    let (first, rest) = components.split_first()?;
    let first = child_slice(first, stem)?;
    let (qos, pod, rest) = match qos_level(first) {
        Some(qos) => {
            let (pod, rest) = rest.split_first()?;
            // The pod slice extends the QoS slice's full name.
            let qos_stem = stem_of(components.first()?)?;
            (qos, child_slice(pod, qos_stem)?, rest)
        }
        None => (QosClass::Guaranteed, first, rest),
    };
    let uid = pod.strip_prefix("pod")?;
    if uid.contains('-') {
        return None;
    }
    let uid = uid.replace('_', "-");
    if !is_pod_uid(&uid) {
        return None;
    }
    let (leaf, below) = rest.split_first()?;
    let unit = leaf.strip_suffix(".scope")?;
    let (runtime, id) =
        [("cri-containerd-", Runtime::Containerd), ("crio-", Runtime::CriO), ("docker-", Runtime::Docker)]
            .into_iter()
            .find_map(|(prefix, runtime)| unit.strip_prefix(prefix).map(|id| (runtime, id)))?;
    container(Some(runtime), Driver::Systemd, id, uid, qos, below)
}

/// The part of a slice's name after its parent's stem and a dash:
/// `kubepods-burstable.slice` below `kubepods` gives `burstable`.
fn child_slice<'a>(name: &'a str, parent_stem: &str) -> Option<&'a str> {
    stem_of(name)?.strip_prefix(parent_stem)?.strip_prefix('-')
}

/// A slice's name without `.slice`.
fn stem_of(name: &str) -> Option<&str> {
    name.strip_suffix(".slice")
}

fn qos_level(name: &str) -> Option<QosClass> {
    match name {
        "besteffort" => Some(QosClass::BestEffort),
        "burstable" => Some(QosClass::Burstable),
        _ => None,
    }
}

fn container(
    runtime: Option<Runtime>,
    driver: Driver,
    id: &str,
    pod_uid: String,
    qos: QosClass,
    below: &[&str],
) -> Option<ContainerCgroup> {
    if !is_container_id(id) {
        return None;
    }
    Some(ContainerCgroup {
        runtime,
        driver,
        container_id: id.to_owned(),
        pod_uid: Some(pod_uid),
        qos,
        depth_below_container: u32::try_from(below.len()).unwrap_or(u32::MAX),
    })
}

/// Exactly [`CONTAINER_ID_LEN`] lowercase hex digits.
fn is_container_id(id: &str) -> bool {
    id.len() == CONTAINER_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_pod_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= MAX_POD_UID_LEN
        && uid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'))
}

/// `/proc/<pid>/cgroup`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroup {
    /// The cgroup v2 path (line `0::<path>`), without the kernel's
    /// ` (deleted)` suffix.
    pub unified: Option<String>,
    /// The kernel marked the v2 cgroup ` (deleted)`: the task is a zombie
    /// whose cgroup was removed. (A cgroup really named `x (deleted)` reads
    /// the same; the kernel gives no way to tell.)
    pub unified_deleted: bool,
    /// The cgroup v1 hierarchies, in file order.
    pub v1: Vec<V1Cgroup>,
    /// The lines that could not be read; they are otherwise ignored.
    pub errors: Vec<LineError>,
}

/// One cgroup v1 line: `<hierarchy>:<controllers>:<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Cgroup {
    /// The hierarchy id (not 0).
    pub hierarchy: u32,
    /// The controllers, and `name=<name>` for a named hierarchy.
    pub controllers: Vec<String>,
    /// The path relative to the hierarchy's root.
    pub path: String,
}

/// A line of `/proc/<pid>/cgroup` that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    /// What is wrong, lowercase.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl ProcCgroup {
    /// The v1 path of the hierarchy that has `controller` (for example
    /// `cpu`, which is usually mounted as `cpu,cpuacct`, or `name=systemd`).
    pub fn v1_path(&self, controller: &str) -> Option<&str> {
        self.v1.iter().find(|h| h.controllers.iter().any(|c| c == controller)).map(|h| h.path.as_str())
    }

    /// The container the task is in: the unified path's if that is a
    /// container path, else the first of the v1 `memory`, `cpu`, `pids` and
    /// `name=systemd` paths that is.
    pub fn container(&self) -> Option<ContainerCgroup> {
        self.unified
            .as_deref()
            .and_then(parse_container_path)
            .or_else(|| V1_PREFERENCE.iter().find_map(|c| self.v1_path(c).and_then(parse_container_path)))
    }
}

/// Parses the contents of `/proc/<pid>/cgroup`: a v2 line `0::<path>`, v1
/// lines `<n>:<controller>[,<controller>...]:<path>`, or both (hybrid).
/// Every malformed line is reported in [`ProcCgroup::errors`] and skipped;
/// blank lines are ignored.
pub fn parse_proc_cgroup(contents: &str) -> ProcCgroup {
    let mut parsed = ProcCgroup::default();
    for (index, line) in contents.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Err(message) = parse_proc_cgroup_line(line, &mut parsed) {
            parsed.errors.push(LineError { line: index + 1, message });
        }
    }
    parsed
}

fn parse_proc_cgroup_line(line: &str, parsed: &mut ProcCgroup) -> Result<(), String> {
    // A path may itself contain `:`, so split at the first two only.
    let mut fields = line.splitn(3, ':');
    let (Some(hierarchy), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(format!("expected `hierarchy:controllers:path`, found `{line}`"));
    };
    let hierarchy: u32 = hierarchy.parse().map_err(|_| format!("hierarchy id `{hierarchy}` is not a number"))?;
    if hierarchy == 0 {
        if !controllers.is_empty() {
            return Err(format!("the cgroup v2 line lists controllers `{controllers}`"));
        }
        if parsed.unified.is_some() {
            return Err("a second cgroup v2 line".to_owned());
        }
        // The kernel appends this to the v2 path of a removed cgroup
        // (`proc_cgroup_show`); never to a v1 path.
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(path) => (path, true),
            None => (path, false),
        };
        check_path(path)?;
        parsed.unified = Some(path.to_owned());
        parsed.unified_deleted = deleted;
        return Ok(());
    }
    check_path(path)?;
    if controllers.is_empty() {
        return Err(format!("hierarchy `{hierarchy}` lists no controllers"));
    }
    let controllers: Vec<String> = controllers.split(',').map(str::to_owned).collect();
    if controllers.iter().any(String::is_empty) {
        return Err(format!("hierarchy `{hierarchy}` has an empty controller name"));
    }
    if parsed.v1.iter().any(|h| h.hierarchy == hierarchy) {
        return Err(format!("hierarchy `{hierarchy}` appears twice"));
    }
    if let Some(c) = controllers.iter().find(|c| parsed.v1_path(c).is_some()) {
        return Err(format!("controller `{c}` appears twice"));
    }
    parsed.v1.push(V1Cgroup { hierarchy, controllers, path: path.to_owned() });
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!("path `{path}` does not start with `/`"))
    }
}

/// A directory below which every task is in some pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubepodsRoot {
    /// The directory.
    pub path: PathBuf,
    /// Its cgroup id ([`cgroup_id`]).
    pub id: u64,
}

/// The cgroup id of a cgroup directory: its inode number, which is the
/// kernfs node id on 64-bit kernels since 5.5.
pub fn cgroup_id(dir: &Path) -> Result<u64, String> {
    let metadata = fs::metadata(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
    if !metadata.is_dir() {
        return Err(format!("`{}` is not a directory", dir.display()));
    }
    Ok(metadata.ino())
}

/// Finds the kubepods roots ([`KUBEPODS_ROOT_NAMES`]) in a cgroup
/// filesystem mount (the cgroup2 mount, or a v1 controller's mount: see
/// [`Hierarchy::id_mount`]), breadth first, sorted by name within a
/// directory. The mount's children are at depth 1; directories down to
/// `max_depth` are looked at ([`DEFAULT_MAX_DEPTH`] suits the layouts
/// known). The walk does not enter a root it found, nor the mount itself
/// (its name is the mount point's, not a cgroup's).
///
/// A directory that disappears during the walk (a cgroup being removed) is
/// skipped; any other error stops the walk and names the path.
pub fn find_kubepods_roots(cgroupfs: &Path, max_depth: u32) -> Result<Vec<KubepodsRoot>, String> {
    let mut roots = Vec::new();
    let mut queue = VecDeque::from([(cgroupfs.to_path_buf(), 0u32)]);
    while let Some((dir, depth)) = queue.pop_front() {
        if depth >= max_depth {
            continue;
        }
        let Some(children) = subdirectories(&dir, depth == 0)? else {
            continue;
        };
        for name in children {
            let path = dir.join(&name);
            if name.to_str().is_some_and(|n| KUBEPODS_ROOT_NAMES.contains(&n)) {
                match fs::symlink_metadata(&path) {
                    Ok(metadata) => roots.push(KubepodsRoot { path, id: metadata.ino() }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
                }
            } else {
                queue.push_back((path, depth + 1));
            }
        }
    }
    Ok(roots)
}

/// The names of `dir`'s subdirectories, sorted; `None` if `dir` is gone
/// (it was removed during the walk) and is not the mount itself.
fn subdirectories(dir: &Path, is_mount: bool) -> Result<Option<Vec<OsString>>, String> {
    let error = |e: io::Error| format!("cannot read `{}`: {e}", dir.display());
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if !is_mount && e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(error)?;
        match entry.file_type() {
            Ok(t) if t.is_dir() => names.push(entry.file_name()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read `{}`: {e}", entry.path().display())),
        }
    }
    names.sort();
    Ok(Some(names))
}

/// The cgroup hierarchies mounted, from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2 only.
    Unified {
        /// The cgroup2 mount.
        mount: PathBuf,
    },
    /// cgroup v2 and v1 side by side (systemd's hybrid mode).
    Hybrid {
        /// The cgroup2 mount (usually `/sys/fs/cgroup/unified`).
        unified: PathBuf,
        /// The v1 mounts: their controllers joined with `,` (as
        /// `cpu,cpuacct` or `name=systemd`), and the mount point.
        v1: Vec<(String, PathBuf)>,
    },
    /// cgroup v1 only.
    Legacy {
        /// As in [`Hierarchy::Hybrid`].
        v1: Vec<(String, PathBuf)>,
    },
    /// No cgroup filesystem mounted.
    None,
}

impl Hierarchy {
    /// The mount of the v1 hierarchy that has `controller`.
    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        let v1 = match self {
            Hierarchy::Hybrid { v1, .. } | Hierarchy::Legacy { v1 } => v1,
            Hierarchy::Unified { .. } | Hierarchy::None => return None,
        };
        v1.iter().find(|(controllers, _)| controllers.split(',').any(|c| c == controller)).map(|(_, m)| m.as_path())
    }

    /// The mount whose directories' inode numbers are the ids the BPF side
    /// reads: the cgroup2 mount on a unified node, the memory controller's
    /// on hybrid and legacy ones (see the module documentation).
    pub fn id_mount(&self) -> Option<&Path> {
        match self {
            Hierarchy::Unified { mount } => Some(mount),
            Hierarchy::Hybrid { .. } | Hierarchy::Legacy { .. } => self.v1_mount("memory"),
            Hierarchy::None => None,
        }
    }
}

/// Reads the cgroup mounts from `/proc/self/mountinfo`.
///
/// mountinfo rather than `/proc/mounts`: it has the root of each mount
/// within its filesystem, so a bind mount of a subtree (root other than
/// `/`, as inside some containers) can be told from the hierarchy's own
/// mount, and is preferred only when no mount of the whole hierarchy
/// exists. Of several mounts of one hierarchy, the first is kept. v1
/// controllers come from the super options; mount points are unescaped
/// (`\040` and friends). Lines that are not cgroup mounts, or malformed,
/// are skipped.
pub fn detect_hierarchy(mounts: &str) -> Hierarchy {
    // (controllers, mount point, whole hierarchy); controllers empty for v2.
    let mut found: Vec<(String, PathBuf, bool)> = Vec::new();
    for line in mounts.lines() {
        let Some((controllers, mount, whole)) = cgroup_mount(line) else {
            continue;
        };
        match found.iter_mut().find(|(c, _, _)| *c == controllers) {
            Some(existing) if !existing.2 && whole => *existing = (controllers, mount, whole),
            Some(_) => {}
            None => found.push((controllers, mount, whole)),
        }
    }
    let mut unified = None;
    let mut v1 = Vec::new();
    for (controllers, mount, _) in found {
        if controllers.is_empty() {
            unified = Some(mount);
        } else {
            v1.push((controllers, mount));
        }
    }
    match (unified, v1.is_empty()) {
        (Some(mount), true) => Hierarchy::Unified { mount },
        (Some(unified), false) => Hierarchy::Hybrid { unified, v1 },
        (None, false) => Hierarchy::Legacy { v1 },
        (None, true) => Hierarchy::None,
    }
}

/// One mountinfo line, if it is a cgroup mount: (controllers, empty for
/// cgroup2; mount point; whether the mount's root is the hierarchy's).
///
/// `36 35 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory`
fn cgroup_mount(line: &str) -> Option<(String, PathBuf, bool)> {
    let fields: Vec<&str> = line.split(' ').collect();
    let root = *fields.get(3)?;
    let mount = *fields.get(4)?;
    // Optional fields run from the 7th to the `-` separator.
    let separator = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fstype = *fields.get(separator + 1)?;
    let options = *fields.get(separator + 3)?;
    let controllers = match fstype {
        "cgroup2" => String::new(),
        "cgroup" => {
            let controllers: Vec<&str> =
                options.split(',').filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name=")).collect();
            if controllers.is_empty() {
                return None;
            }
            controllers.join(",")
        }
        _ => return None,
    };
    Some((controllers, unescape_mountinfo(mount), root == "/"))
}

/// Undoes the kernel's octal escapes (`\040` for a space) in a mountinfo
/// path; anything else is kept as it is.
fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes.get(i + 1..i + 4).filter(|d| b == b'\\' && d.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal.and_then(|d| d.iter().try_fold(0u8, |acc, d| acc.checked_mul(8)?.checked_add(d - b'0'))) {
            Some(value) => {
                out.push(value);
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "4c4dd1d9fd9f4ea05ab0d5d66dcb8d4ebb6e2e1fd4a2b1a8f1f1c1a8e2a4b9c3";
    const ID2: &str = "d0b3a4a4c1f9e8f0b0d6a8a1e5f2d9c3b7e6a5f4d3c2b1a0f9e8d7c6b5a49382";
    const HOST: &str = "9b1a33e4b7d6c5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0";
    const UID: &str = "6b5a2d4e-1c3f-4c1e-9f0e-2a7b8c9d0e1f";
    const UID_: &str = "6b5a2d4e_1c3f_4c1e_9f0e_2a7b8c9d0e1f";
    /// A static pod's uid: kubelet's md5 of the manifest.
    const STATIC_UID: &str = "0f7b3c0e1e2d4c5b6a79880716253443";

    fn want(
        runtime: Option<Runtime>,
        driver: Driver,
        id: &str,
        uid: &str,
        qos: QosClass,
        depth: u32,
    ) -> Option<ContainerCgroup> {
        Some(ContainerCgroup {
            runtime,
            driver,
            container_id: id.to_owned(),
            pod_uid: Some(uid.to_owned()),
            qos,
            depth_below_container: depth,
        })
    }

    #[test]
    fn real_world_container_paths() {
        use Driver::{Cgroupfs, Systemd};
        use QosClass::{BestEffort, Burstable, Guaranteed};
        use Runtime::{Containerd, CriO, Docker};
        let cases: Vec<(String, Option<ContainerCgroup>)> = vec![
            // cgroupfs driver: containerd and docker write a bare id.
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), want(None, Cgroupfs, ID, UID, BestEffort, 0)),
            (format!("/kubepods/burstable/pod{UID}/{ID}"), want(None, Cgroupfs, ID, UID, Burstable, 0)),
            (format!("/kubepods/pod{UID}/{ID}"), want(None, Cgroupfs, ID, UID, Guaranteed, 0)),
            (format!("/kubepods/pod{STATIC_UID}/{ID}"), want(None, Cgroupfs, ID, STATIC_UID, Guaranteed, 0)),
            // CRI-O with cgroupfs.
            (format!("/kubepods/burstable/pod{UID}/crio-{ID}"), want(Some(CriO), Cgroupfs, ID, UID, Burstable, 0)),
            // systemd driver, every runtime and class.
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                want(Some(Containerd), Systemd, ID, UID, BestEffort, 0),
            ),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope"),
                want(Some(CriO), Systemd, ID, UID, Burstable, 0),
            ),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/docker-{ID}.scope"),
                want(Some(Docker), Systemd, ID, UID, BestEffort, 0),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope"),
                want(Some(Containerd), Systemd, ID, UID, Guaranteed, 0),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{STATIC_UID}.slice/crio-{ID}.scope"),
                want(Some(CriO), Systemd, ID, STATIC_UID, Guaranteed, 0),
            ),
            // crun's subgroup for a container running systemd.
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope/container"
                ),
                want(Some(CriO), Systemd, ID, UID, Burstable, 1),
            ),
            // Nested systemd inside the container.
            (
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope/init.scope"),
                want(Some(Containerd), Systemd, ID, UID, Guaranteed, 1),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}/{ID}/system.slice/foo.service"),
                want(None, Cgroupfs, ID, UID, BestEffort, 2),
            ),
            // kind nodes and docker-in-docker, seen from the host.
            (format!("/docker/{HOST}/kubepods/besteffort/pod{UID}/{ID}"), want(None, Cgroupfs, ID, UID, BestEffort, 0)),
            (format!("/kubelet/kubepods/burstable/pod{UID}/{ID}"), want(None, Cgroupfs, ID, UID, Burstable, 0)),
            (
                format!("/system.slice/docker-{HOST}.scope/kubepods/pod{UID}/crio-{ID}"),
                want(Some(CriO), Cgroupfs, ID, UID, Guaranteed, 0),
            ),
            (
                format!(
                    "/system.slice/docker-{HOST}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                want(Some(Containerd), Systemd, ID, UID, BestEffort, 0),
            ),
            (
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                want(Some(Containerd), Systemd, ID, UID, Guaranteed, 0),
            ),
            // kind in a pod: the outer kubelet's container wins.
            (
                format!("/kubepods/burstable/pod{UID}/{ID}/kubepods/besteffort/pod{STATIC_UID}/{ID2}"),
                want(None, Cgroupfs, ID, UID, Burstable, 4),
            ),
            // A `kubepods` that starts no layout is just a prefix.
            (format!("/kubepods/other/kubepods/pod{UID}/{ID2}"), want(None, Cgroupfs, ID2, UID, Guaranteed, 0)),
        ];
        for (path, expected) in cases {
            assert_eq!(parse_container_path(&path), expected, "{path}");
        }
    }

    #[test]
    fn not_containers() {
        let short = &ID[..12];
        let upper = ID.to_uppercase();
        let long = format!("{ID}0");
        let cases = [
            // Host cgroups.
            "/".to_owned(),
            String::new(),
            "/system.slice/sshd.service".to_owned(),
            "/user.slice/user-1000.slice/session-1.scope".to_owned(),
            format!("/system.slice/docker-{ID}.scope"),
            format!("/docker/{ID}"),
            "/init.scope".to_owned(),
            // Kubelet levels above the containers.
            "/kubepods".to_owned(),
            "/kubepods/besteffort".to_owned(),
            format!("/kubepods/besteffort/pod{UID}"),
            format!("/kubepods/pod{UID}"),
            "/kubepods.slice".to_owned(),
            "/kubepods.slice/kubepods-burstable.slice".to_owned(),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"),
            format!("/kubepods.slice/kubepods-pod{UID_}.slice"),
            // CRI-O's conmon sits in the pod's cgroup.
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{ID}.scope"
            ),
            format!("/kubepods/burstable/pod{UID}/crio-conmon-{ID}"),
            // Ids of the wrong shape.
            format!("/kubepods/besteffort/pod{UID}/{short}"),
            format!("/kubepods/besteffort/pod{UID}/{upper}"),
            format!("/kubepods/besteffort/pod{UID}/{long}"),
            format!("/kubepods/besteffort/pod{UID}/{}", &ID[1..]),
            format!("/kubepods/besteffort/pod{UID}/{}g", &ID[1..]),
            format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{short}.scope"),
            // Each driver's leaf form only.
            format!("/kubepods/besteffort/pod{UID}/cri-containerd-{ID}.scope"),
            format!("/kubepods.slice/kubepods-pod{UID_}.slice/{ID}"),
            format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}"),
            format!("/kubepods.slice/kubepods-pod{UID_}.slice/runc-{ID}.scope"),
            // Slices that do not extend their parent, or mix drivers.
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope"),
            format!("/kubepods.slice/kubelet-kubepods-pod{UID_}.slice/crio-{ID}.scope"),
            format!("/kubepods.slice/besteffort/pod{UID}/{ID}"),
            format!("/kubepods/kubepods-pod{UID_}.slice/crio-{ID}.scope"),
            format!("/kubepods.slice/kubepods-guaranteed.slice/kubepods-guaranteed-pod{UID_}.slice/crio-{ID}.scope"),
            // Pod uids: systemd's must use underscores, cgroupfs' dashes.
            format!("/kubepods.slice/kubepods-pod{UID}.slice/crio-{ID}.scope"),
            format!("/kubepods/pod{UID_}/{ID}"),
            format!("/kubepods/pod/{ID}"),
            format!("/kubepods/pod{}/{ID}", UID.to_uppercase()),
            format!("/kubepods/besteffort/{UID}/{ID}"),
            // Path tricks.
            format!("kubepods/besteffort/pod{UID}/{ID}"),
            format!("/kubepods/besteffort/pod{UID}/{ID}/"),
            format!("/kubepods//besteffort/pod{UID}/{ID}"),
            format!("/kubepods/besteffort/pod{UID}/./{ID}"),
            format!("/kubepods/besteffort/pod{UID}/../pod{UID}/{ID}"),
            format!("/../../kubepods/besteffort/pod{UID}/{ID}"),
            format!("/kubepods/besteffort/pod{UID}/{ID}/.."),
            "garbage".to_owned(),
            "/\0/kubepods".to_owned(),
        ];
        for path in cases {
            assert_eq!(parse_container_path(&path), None, "{path}");
        }
    }

    #[test]
    fn proc_cgroup_v2() {
        let path = format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope");
        let parsed = parse_proc_cgroup(&format!("0::{path}\n"));
        assert_eq!(parsed.unified.as_deref(), Some(path.as_str()));
        assert!(!parsed.unified_deleted);
        assert!(parsed.v1.is_empty());
        assert!(parsed.errors.is_empty());
        assert_eq!(parsed.container().map(|c| c.container_id), Some(ID.to_owned()));
    }

    #[test]
    fn proc_cgroup_v2_deleted() {
        let parsed = parse_proc_cgroup(&format!("0::/kubepods/pod{UID}/{ID} (deleted)\n"));
        assert_eq!(parsed.unified, Some(format!("/kubepods/pod{UID}/{ID}")));
        assert!(parsed.unified_deleted);
        assert!(parsed.errors.is_empty());
        assert_eq!(parsed.container().map(|c| c.container_id), Some(ID.to_owned()));
    }

    #[test]
    fn proc_cgroup_v1() {
        let c = format!("/kubepods/burstable/pod{UID}/{ID}");
        let contents = format!(
            "12:hugetlb:{c}\n11:memory:{c}\n10:cpu,cpuacct:{c}\n9:pids:{c}\n8:devices:{c}\n\
             7:net_cls,net_prio:{c}\n6:freezer:{c}\n5:blkio:{c}\n4:perf_event:{c}\n3:cpuset:{c}\n\
             2:rdma:/\n1:name=systemd:{c}\n"
        );
        let parsed = parse_proc_cgroup(&contents);
        assert_eq!(parsed.errors, vec![]);
        assert_eq!(parsed.unified, None);
        assert_eq!(parsed.v1.len(), 12);
        assert_eq!(parsed.v1_path("cpuacct"), Some(c.as_str()));
        assert_eq!(parsed.v1_path("rdma"), Some("/"));
        assert_eq!(parsed.v1_path("name=systemd"), Some(c.as_str()));
        assert_eq!(parsed.v1_path("misc"), None);
        let first = parsed.v1.first().unwrap();
        assert_eq!((first.hierarchy, first.controllers.clone()), (12, vec!["hugetlb".to_owned()]));
        assert_eq!(parsed.container(), want(None, Driver::Cgroupfs, ID, UID, QosClass::Burstable, 0));
    }

    #[test]
    fn proc_cgroup_v1_preference() {
        // memory, then cpu, then pids, then name=systemd.
        let a = format!("/kubepods/pod{UID}/{ID}");
        let b = format!("/kubepods/pod{UID}/{ID2}");
        let id_of = |contents: &str| parse_proc_cgroup(contents).container().map(|c| c.container_id);
        assert_eq!(id_of(&format!("3:memory:{a}\n2:cpu,cpuacct:{b}\n1:name=systemd:{b}\n")), Some(ID.to_owned()));
        assert_eq!(id_of(&format!("3:memory:/\n2:cpu,cpuacct:{b}\n1:name=systemd:{a}\n")), Some(ID2.to_owned()));
        assert_eq!(id_of(&format!("3:memory:/\n2:pids:{b}\n1:name=systemd:{a}\n")), Some(ID2.to_owned()));
        assert_eq!(id_of(&format!("3:memory:/\n2:pids:/\n1:name=systemd:{a}\n")), Some(ID.to_owned()));
        // Other controllers are not consulted.
        assert_eq!(id_of(&format!("3:memory:/\n2:devices:{a}\n")), None);
    }

    #[test]
    fn proc_cgroup_hybrid() {
        let c =
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/docker-{ID}.scope");
        // The runtime joined the unified hierarchy too: it is preferred.
        let joined = format!("11:memory:{c}\n1:name=systemd:{c}\n0::{c}\n");
        let parsed = parse_proc_cgroup(&joined);
        assert_eq!(parsed.errors, vec![]);
        assert_eq!(parsed.unified.as_deref(), Some(c.as_str()));
        assert_eq!(parsed.container(), want(Some(Runtime::Docker), Driver::Systemd, ID, UID, QosClass::BestEffort, 0));
        // It did not: the unified path is the runtime's service; memory decides.
        let other = format!("11:memory:/kubepods/pod{UID}/{ID2}\n1:name=systemd:/system.slice/containerd.service\n0::/system.slice/containerd.service\n");
        let parsed = parse_proc_cgroup(&other);
        assert_eq!(parsed.errors, vec![]);
        assert_eq!(parsed.container().map(|c| c.container_id), Some(ID2.to_owned()));
        // A host task.
        let host = "11:memory:/system.slice/sshd.service\n1:name=systemd:/system.slice/sshd.service\n0::/system.slice/sshd.service\n";
        assert_eq!(parse_proc_cgroup(host).container(), None);
    }

    #[test]
    fn proc_cgroup_outside_namespace() {
        // The task is outside the reader's cgroup namespace.
        let parsed = parse_proc_cgroup(&format!("0::/../../kubepods/pod{UID}/{ID}\n"));
        assert!(parsed.errors.is_empty());
        assert_eq!(parsed.container(), None);
    }

    #[test]
    fn proc_cgroup_paths_with_colons() {
        let parsed = parse_proc_cgroup("0::/a:b:c\n");
        assert_eq!(parsed.unified.as_deref(), Some("/a:b:c"));
        assert!(parsed.errors.is_empty());
    }

    #[test]
    fn proc_cgroup_malformed_lines() {
        let contents = format!(
            "garbage\n\n3:memory\nx:memory:/\n4:cpu:relative\n0:memory:/\n0::/a\n0::/b\n\
             5::/\n6:memory:/m\n6:pids:/p\n7:memory:/again\n8:cpu,,pids:/\n-1:blkio:/\n9:devices:/kubepods/pod{UID}/{ID}\n"
        );
        let parsed = parse_proc_cgroup(&contents);
        let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14]);
        let messages: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            vec![
                "line 1: expected `hierarchy:controllers:path`, found `garbage`",
                "line 3: expected `hierarchy:controllers:path`, found `3:memory`",
                "line 4: hierarchy id `x` is not a number",
                "line 5: path `relative` does not start with `/`",
                "line 6: the cgroup v2 line lists controllers `memory`",
                "line 8: a second cgroup v2 line",
                "line 9: hierarchy `5` lists no controllers",
                "line 11: hierarchy `6` appears twice",
                "line 12: controller `memory` appears twice",
                "line 13: hierarchy `8` has an empty controller name",
                "line 14: hierarchy id `-1` is not a number",
            ]
        );
        // The good lines are kept.
        assert_eq!(parsed.unified.as_deref(), Some("/a"));
        assert_eq!(parsed.v1_path("memory"), Some("/m"));
        assert_eq!(parsed.v1_path("devices"), Some(format!("/kubepods/pod{UID}/{ID}").as_str()));
        // devices is not a controller the identity is read from.
        assert_eq!(parsed.container(), None);
        assert_eq!(parse_proc_cgroup(""), ProcCgroup::default());
    }

    const MOUNTINFO_UNIFIED: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
";

    const MOUNTINFO_HYBRID: &str = "\
25 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
33 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,cpuset,noprefix,release_agent=/x
";

    #[test]
    fn hierarchy_unified() {
        let h = detect_hierarchy(MOUNTINFO_UNIFIED);
        assert_eq!(h, Hierarchy::Unified { mount: PathBuf::from("/sys/fs/cgroup") });
        assert_eq!(h.id_mount(), Some(Path::new("/sys/fs/cgroup")));
        assert_eq!(h.v1_mount("memory"), None);
    }

    #[test]
    fn hierarchy_hybrid() {
        let v1 = vec![
            ("name=systemd".to_owned(), PathBuf::from("/sys/fs/cgroup/systemd")),
            ("memory".to_owned(), PathBuf::from("/sys/fs/cgroup/memory")),
            ("cpu,cpuacct".to_owned(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")),
            ("cpuset".to_owned(), PathBuf::from("/sys/fs/cgroup/cpuset")),
        ];
        let h = detect_hierarchy(MOUNTINFO_HYBRID);
        assert_eq!(h, Hierarchy::Hybrid { unified: PathBuf::from("/sys/fs/cgroup/unified"), v1 });
        assert_eq!(h.id_mount(), Some(Path::new("/sys/fs/cgroup/memory")));
        assert_eq!(h.v1_mount("cpuacct"), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct")));
    }

    #[test]
    fn hierarchy_legacy() {
        let legacy: String =
            MOUNTINFO_HYBRID.lines().filter(|l| !l.contains("cgroup2")).map(|l| format!("{l}\n")).collect();
        let h = detect_hierarchy(&legacy);
        let Hierarchy::Legacy { v1 } = &h else { panic!("{h:?}") };
        assert_eq!(v1.len(), 4);
        assert_eq!(h.id_mount(), Some(Path::new("/sys/fs/cgroup/memory")));
        // Legacy without memory: no id mount.
        let no_memory: String =
            legacy.lines().filter(|l| !l.ends_with("rw,memory")).map(|l| format!("{l}\n")).collect();
        assert_eq!(detect_hierarchy(&no_memory).id_mount(), None);
    }

    #[test]
    fn hierarchy_none_and_garbage() {
        assert_eq!(detect_hierarchy(""), Hierarchy::None);
        assert_eq!(detect_hierarchy("garbage\n1 2 3\n- - - -\n"), Hierarchy::None);
        let h = detect_hierarchy("28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n");
        assert_eq!(h, Hierarchy::None);
        assert_eq!(h.id_mount(), None);
        // A v1 mount with no controller is not a hierarchy.
        assert_eq!(detect_hierarchy("1 2 0:3 / /x rw - cgroup cgroup rw,xattr\n"), Hierarchy::None);
    }

    #[test]
    fn hierarchy_bind_mounts_and_escapes() {
        // A container's bind mount of its own subtree comes first; the
        // whole hierarchy's mount is preferred. No optional fields here.
        let mounts = "\
100 99 0:23 /kubepods/pod1 /host\\040cgroup rw - cgroup2 cgroup2 rw
101 99 0:23 / /sys/fs/cgroup rw shared:1 shared:2 - cgroup2 cgroup2 rw
102 99 0:23 / /again rw - cgroup2 cgroup2 rw
";
        assert_eq!(detect_hierarchy(mounts), Hierarchy::Unified { mount: PathBuf::from("/sys/fs/cgroup") });
        // Only the subtree: taken, unescaped.
        let first = mounts.lines().next().unwrap();
        assert_eq!(detect_hierarchy(first), Hierarchy::Unified { mount: PathBuf::from("/host cgroup") });
        assert_eq!(unescape_mountinfo("a\\011b\\134c\\012"), PathBuf::from("a\tb\\c\n"));
        // Not escapes: kept as they are.
        assert_eq!(unescape_mountinfo("a\\08b\\777\\04"), PathBuf::from("a\\08b\\777\\04"));
    }

    /// A directory tree below the temporary directory, removed on drop.
    struct TempTree(PathBuf);

    impl TempTree {
        fn new(name: &str) -> TempTree {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let root = std::env::temp_dir().join(format!("d4c-cgroup-{name}-{}-{nanos}", std::process::id()));
            fs::create_dir(&root).unwrap();
            TempTree(root)
        }

        fn dir(&self, path: &str) -> PathBuf {
            let path = self.0.join(path);
            fs::create_dir_all(&path).unwrap();
            path
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn kubepods_roots_in_a_tree() {
        let tree = TempTree::new("roots");
        let v2 = tree.dir("kubepods.slice");
        tree.dir("kubepods.slice/kubepods-besteffort.slice/kubepods/deeper");
        let kubelet = tree.dir("kubelet.slice/kubelet-kubepods.slice");
        let kind = tree.dir("system.slice/docker-abc.scope/kubelet.slice/kubelet-kubepods.slice");
        let deep = tree.dir("a/b/c/d/kubepods");
        let v1 = tree.dir("docker/abc/kubepods");
        tree.dir("system.slice/sshd.service");
        tree.dir("kubepods-like/kubepods.scope");
        // A file with a root's name is not a root.
        fs::write(tree.0.join("system.slice/kubepods"), "").unwrap();

        let found = find_kubepods_roots(&tree.0, DEFAULT_MAX_DEPTH).unwrap();
        let paths: Vec<&Path> = found.iter().map(|r| r.path.as_path()).collect();
        // Breadth first, by name within a directory.
        assert_eq!(paths, vec![v2.as_path(), kubelet.as_path(), v1.as_path(), kind.as_path()]);
        for root in &found {
            assert_eq!(root.id, fs::metadata(&root.path).unwrap().ino());
            assert_eq!(cgroup_id(&root.path), Ok(root.id));
        }

        let deeper = find_kubepods_roots(&tree.0, 5).unwrap();
        assert_eq!(deeper.len(), 5);
        assert!(deeper.iter().any(|r| r.path == deep));
        assert_eq!(find_kubepods_roots(&tree.0, 1).unwrap().len(), 1);
        assert_eq!(find_kubepods_roots(&tree.0, 0).unwrap(), vec![]);
        // The mount's own name does not count.
        assert_eq!(find_kubepods_roots(&v1, 4).unwrap(), vec![]);
    }

    #[test]
    fn kubepods_roots_errors_name_the_path() {
        let tree = TempTree::new("errors");
        let missing = tree.0.join("missing");
        let error = find_kubepods_roots(&missing, 4).unwrap_err();
        assert!(error.starts_with(&format!("cannot read `{}`: ", missing.display())), "{error}");
        let error = cgroup_id(&missing).unwrap_err();
        assert!(error.contains(&format!("`{}`", missing.display())), "{error}");
        let file = tree.0.join("file");
        fs::write(&file, "").unwrap();
        assert_eq!(cgroup_id(&file), Err(format!("`{}` is not a directory", file.display())));
        assert!(find_kubepods_roots(&file, 4).unwrap_err().contains(&format!("`{}`", file.display())));
    }

    fn hex64() -> impl Strategy<Value = String> {
        "[0-9a-f]{64}"
    }

    /// Components likely to meet the parser's cases.
    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("kubepods".to_owned()),
            Just("kubepods.slice".to_owned()),
            Just("kubelet-kubepods.slice".to_owned()),
            Just("besteffort".to_owned()),
            Just("burstable".to_owned()),
            Just("kubepods-besteffort.slice".to_owned()),
            Just(format!("pod{UID}")),
            Just(format!("kubepods-pod{UID_}.slice")),
            Just(format!("kubepods-besteffort-pod{UID_}.slice")),
            hex64(),
            hex64().prop_map(|id| format!("crio-{id}")),
            hex64().prop_map(|id| format!("cri-containerd-{id}.scope")),
            Just("..".to_owned()),
            Just(String::new()),
            "[a-z0-9_.-]{0,12}",
            "[[:xdigit:]]{60,68}",
        ]
    }

    fn assert_well_formed(parsed: &ContainerCgroup, path: &str) {
        assert_eq!(parsed.container_id.len(), CONTAINER_ID_LEN, "{path}");
        assert!(parsed.container_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{path}");
        assert!(path.contains(&parsed.container_id), "{path}");
        let uid = parsed.pod_uid.as_deref().unwrap();
        assert!(is_pod_uid(uid), "{path}");
        assert!((parsed.depth_below_container as usize) < path.split('/').count(), "{path}");
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(path in ".*") {
            if let Some(parsed) = parse_container_path(&path) {
                assert_well_formed(&parsed, &path);
            }
        }

        #[test]
        fn arbitrary_component_paths(components in prop::collection::vec(component(), 0..10)) {
            let path = format!("/{}", components.join("/"));
            if let Some(parsed) = parse_container_path(&path) {
                assert_well_formed(&parsed, &path);
            }
        }

        #[test]
        fn generated_layouts_round_trip(
            systemd in any::<bool>(),
            kubelet_root in any::<bool>(),
            runtime in 0usize..4,
            qos in 0usize..3,
            uid in prop_oneof!["[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[0-9a-f]{32}"],
            id in hex64(),
            prefix in prop::collection::vec("[a-z][a-z0-9-]{0,10}(\\.slice|\\.scope)?", 0..3),
            below in prop::collection::vec("[a-zA-Z0-9_:-]{1,10}(\\.scope)?", 0..3),
        ) {
            prop_assume!(prefix.iter().all(|p| !KUBEPODS_ROOT_NAMES.contains(&p.as_str())));
            let qos = [QosClass::Guaranteed, QosClass::Burstable, QosClass::BestEffort][qos];
            let level = match qos {
                QosClass::Guaranteed => None,
                QosClass::Burstable => Some("burstable"),
                QosClass::BestEffort => Some("besteffort"),
            };
            let mut parts: Vec<String> = prefix.clone();
            let (driver, runtime) = if systemd {
                let stem = if kubelet_root { "kubelet-kubepods" } else { "kubepods" };
                let runtime = [Runtime::Containerd, Runtime::CriO, Runtime::Docker, Runtime::Containerd][runtime];
                let unit = match runtime {
                    Runtime::Containerd => "cri-containerd",
                    Runtime::CriO => "crio",
                    Runtime::Docker => "docker",
                };
                parts.push(format!("{stem}.slice"));
                let pod_stem = match level {
                    Some(level) => {
                        parts.push(format!("{stem}-{level}.slice"));
                        format!("{stem}-{level}")
                    }
                    None => stem.to_owned(),
                };
                parts.push(format!("{pod_stem}-pod{}.slice", uid.replace('-', "_")));
                parts.push(format!("{unit}-{id}.scope"));
                (Driver::Systemd, Some(runtime))
            } else {
                parts.push("kubepods".to_owned());
                parts.extend(level.map(str::to_owned));
                parts.push(format!("pod{uid}"));
                let crio = runtime == 1;
                parts.push(if crio { format!("crio-{id}") } else { id.clone() });
                (Driver::Cgroupfs, crio.then_some(Runtime::CriO))
            };
            parts.extend(below.iter().cloned());
            let path = format!("/{}", parts.join("/"));
            let expected = want(runtime, driver, &id, &uid, qos, below.len() as u32);
            prop_assert_eq!(parse_container_path(&path), expected, "{}", path);
            // The same path as a v2 and as a v1 memory line.
            prop_assert_eq!(parse_proc_cgroup(&format!("0::{path}\n")).container().map(|c| c.container_id), Some(id.clone()));
            prop_assert_eq!(parse_proc_cgroup(&format!("4:memory:{path}\n")).container().map(|c| c.container_id), Some(id.clone()));
        }

        #[test]
        fn proc_cgroup_never_panics(contents in "([0-9]{0,3}:[a-z,=]{0,12}:[/a-z:() ]{0,16}\n?|.{0,20}\n){0,8}") {
            let parsed = parse_proc_cgroup(&contents);
            let lines = contents.lines().count();
            for error in &parsed.errors {
                prop_assert!(error.line >= 1 && error.line <= lines);
            }
            let _ = parsed.container();
        }

        #[test]
        fn mountinfo_never_panics(mounts in "([0-9 :/a-z,=\\\\-]{0,60}\n){0,6}") {
            let h = detect_hierarchy(&mounts);
            let _ = h.id_mount();
        }
    }
}
