//! Containers as a node makes them: a [`Container`] is a pod's container
//! made by containerd through the CRI API ([`crate::cri`]), as a kubelet
//! asks for it, on the overlayfs snapshotter, from an image built and
//! imported in the guest ([`crate::image`]) that holds the in-container
//! agent and the spec's files; the agent is its command.
//!
//! In: a [`ContainerSpec`] and a scratch directory. Out: a running
//! container whose actors can be staged ([`Container::stage`]) before any
//! probe is loaded and then made to perform one syscall each
//! ([`Container::perform`]).
//!
//! On the guest, a container is:
//!
//! ```text
//! /run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/   its bundle (config.json, rootfs: the overlay)
//! /sys/fs/cgroup/kubepods/besteffort/pod<uid>/<id>/            its cgroup (the sandbox's beside it)
//! /var/lib/kubelet/pods/<uid>/                                  the kubelet's pod directory: volumes, etc-hosts
//! /var/log/pods/<namespace>_<pod>_<uid>/<name>/0.log            its CRI log (the agent's stderr)
//! ```
//!
//! The spec's files are in the image's one layer, so that writing them
//! goes through overlayfs' copy-up, except where a volume covers them:
//! then they are in the volume, as an init container would have left
//! them ([`lay_out`]). The agent talks to the harness over the guest's
//! loopback ([`crate::link`]). [`Container::host_path`] reaches a
//! container path from the guest through `/proc/<agent pid>/root`: the
//! container's own mount namespace, volumes included.
//!
//! Invariants: every file the steps may touch is created before the
//! container starts; after a request fails in a way that may leave a
//! reply unread, the container refuses further requests (a late reply must
//! never be taken for the next one); every wait is bounded; [`Drop`] tears
//! the container down if [`Container::stop`] was not called.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cri::{self, ContainerRequest, Pod};
use crate::image::{self, Entry};
use crate::link;
use crate::node::{self, Key, KubeletDirs};
pub use crate::ops::{Actor, AgentOp, LinkVia, Outcome};
use crate::protocol::{
    write_line, LineReader, Reply, Request, AGENT_READY_TIMEOUT, EXIT_TIMEOUT, GUEST_SLACK, PERFORM_TIMEOUT,
    STAGE_TIMEOUT,
};

/// Where the guest mounts cgroup2.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The agent's path inside every container.
pub const AGENT_PATH: &str = "/.d4c/agent";
/// containerd's bundles (the `k8s.io` namespace of its runc v2 shim).
pub const BUNDLE_ROOT: &str = "/run/containerd/io.containerd.runtime.v2.task/k8s.io";
/// The image of a spec that names none (a kubelet always has one).
pub const NO_IMAGE: &str = "localhost/d4c-vmtest/no-image:latest";
/// The namespace of a spec that names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// How long StopContainer waits before SIGKILL (the agent has usually
/// exited already: its link closed).
const STOP_TIMEOUT_S: i64 = 5;
/// How long a removed container's cgroup may take to go.
const CGROUP_GONE_TIMEOUT: Duration = Duration::from_secs(10);
/// Paths the kubelet and containerd mount into every container: they are
/// files of every image, as of most base images.
pub const NODE_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// What a container is: its identity as the kubelet and containerd give it,
/// and the file system state before any step. The container's id is
/// containerd's ([`Container::id`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSpec {
    /// The scenario's container name, e.g. `web` (the CRI container name).
    pub name: String,
    /// The pod's UID, a UUID such as `2d5d6f2a-...`. Containers of one UID
    /// share one pod sandbox.
    pub pod_uid: String,
    /// The image reference as a pod spec writes it; [`NO_IMAGE`] if none.
    pub image: Option<String>,
    /// The pod's namespace; [`DEFAULT_NAMESPACE`] if none.
    pub namespace: Option<String>,
    /// The pod's name; the container's name if none.
    pub pod: Option<String>,
    /// Pod labels (the sandbox's labels; containerd writes none into the
    /// bundle).
    pub labels: Vec<(String, String)>,
    /// emptyDir volumes, by mount path.
    pub volumes: Vec<String>,
    /// Single files mounted by `subPath` from an emptyDir (writable): the
    /// scenarios' `volume file`, which steps write.
    pub volume_files: Vec<String>,
    /// ConfigMap volumes (read-only, the atomic writer's layout), by mount
    /// path: the spec's `files` below one are its keys.
    pub config_maps: Vec<String>,
    /// Single ConfigMap keys mounted by `subPath` (read-only).
    pub config_map_files: Vec<String>,
    /// hostPath directory volumes (writable).
    pub host_paths: Vec<String>,
    /// Regular files that exist before the steps, with their modes. A mode
    /// with an execute bit (`0o111`) makes the file a copy of the agent
    /// binary, so that exec'ing it runs `noop`; otherwise it holds a line
    /// of text.
    pub files: Vec<(String, u32)>,
    /// Directories that exist before the steps (mode 0755).
    pub dirs: Vec<String>,
    /// `securityContext.privileged` (for `CAP_SYS_ADMIN`: a bind mount).
    pub privileged: bool,
    /// The text of `/etc/passwd` (one of `files`), when the scenario
    /// declares the container's users.
    pub passwd: Option<String>,
}

impl ContainerSpec {
    /// The pod the container is in, with the kubelet's defaults for what
    /// the spec leaves out.
    pub fn pod(&self) -> Pod {
        Pod {
            uid: self.pod_uid.clone(),
            name: self.pod.clone().unwrap_or_else(|| self.name.clone()),
            namespace: self.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            labels: self.labels.clone(),
            privileged: self.privileged,
        }
    }

    /// The image reference as the pod spec gives it.
    pub fn image_reference(&self) -> &str {
        self.image.as_deref().unwrap_or(NO_IMAGE)
    }

    /// Every volume's mount path (directory volumes), with its kind.
    fn dir_volumes(&self) -> impl Iterator<Item = (VolumeKind, &String)> {
        let kinds = [
            (VolumeKind::EmptyDir, &self.volumes),
            (VolumeKind::ConfigMap, &self.config_maps),
            (VolumeKind::HostPath, &self.host_paths),
        ];
        kinds.into_iter().flat_map(|(kind, paths)| paths.iter().map(move |p| (kind, p)))
    }
}

/// The kinds of directory volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VolumeKind {
    EmptyDir,
    ConfigMap,
    HostPath,
}

/// The components of an absolute container path; `.`, `..` and NUL are
/// refused (paths must be canonical), empty components (`//`) skipped.
fn components(path: &str) -> Result<Vec<&str>, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path"));
    }
    if path.contains('\0') {
        return Err(format!("`{}` contains NUL", path.escape_debug()));
    }
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|&c| c == "." || c == "..") {
        return Err(format!("`{path}` is not canonical (`.` or `..`)"));
    }
    Ok(parts)
}

/// Whether `inner` is `outer` or below it (canonical paths).
fn is_under(inner: &[&str], outer: &[&str]) -> bool {
    outer.len() <= inner.len() && outer.iter().zip(inner).all(|(a, b)| a == b)
}

/// Checks what `start` relies on: pod UID shape, canonical absolute paths,
/// no volume at `/` (a kubelet mounts none there), no path both a volume
/// and a file.
fn validate(spec: &ContainerSpec) -> Result<(), String> {
    if spec.pod_uid.is_empty() || !spec.pod_uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("pod UID `{}` is not a UUID", spec.pod_uid));
    }
    if spec.name.is_empty() {
        return Err("empty container name".to_string());
    }
    let single = spec.volume_files.iter().chain(&spec.config_map_files);
    for path in spec.dir_volumes().map(|(_, p)| p).chain(single.clone()) {
        if components(path)?.is_empty() {
            return Err(format!("a volume cannot be mounted at `{path}`"));
        }
    }
    for path in spec.files.iter().map(|(p, _)| p).chain(&spec.dirs) {
        components(path)?;
    }
    for file in single {
        if spec.dir_volumes().any(|(_, v)| components(v).ok() == components(file).ok()) {
            return Err(format!("`{file}` is both a volume and a volume file"));
        }
    }
    for (path, mode) in &spec.files {
        if *mode > 0o7777 {
            return Err(format!("file `{path}`: mode {mode:o} has bits beyond 07777"));
        }
        if spec.dir_volumes().any(|(_, v)| components(v).ok() == components(path).ok()) {
            return Err(format!("`{path}` is both a volume (a directory) and a file"));
        }
    }
    Ok(())
}

/// The content of a spec file: the agent binary for an executable mode,
/// else a line naming it.
fn content(path: &str, mode: u32, agent: &[u8]) -> Vec<u8> {
    if mode & 0o111 != 0 {
        agent.to_vec()
    } else {
        format!("d4c-vmtest file {path}\n").into_bytes()
    }
}

/// What [`lay_out`] made: the mounts to ask for and the image's entries.
#[derive(Debug, Default)]
pub struct Layout {
    /// The CRI mounts, in the kubelet's order (volumes, then `/etc/hosts`
    /// and `/dev/termination-log`).
    pub mounts: Vec<k8s_cri::v1::Mount>,
    /// The image's file system.
    pub entries: Vec<Entry>,
    /// The hostPath directories made (removed with the container).
    pub host_paths: Vec<PathBuf>,
}

/// Lays the spec out as a kubelet and an image would: volume directories
/// under `dirs` (their files written there), hostPath directories under
/// `host_root`, and everything else as image entries. `token` names the
/// container's termination log; `timestamp` its ConfigMaps' data
/// directories.
pub fn lay_out(
    spec: &ContainerSpec,
    dirs: &KubeletDirs,
    host_root: &Path,
    agent: &[u8],
    token: &str,
    timestamp: &str,
) -> Result<Layout, String> {
    let uid = &spec.pod_uid;
    let safe: String = spec.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let mut layout = Layout::default();
    // Directory volumes: (components, kind, guest directory, ConfigMap keys).
    let mut dir_volumes: Vec<(Vec<&str>, VolumeKind, PathBuf, Vec<Key>)> = Vec::new();
    for (n, (kind, path)) in spec.dir_volumes().enumerate() {
        let dir = match kind {
            VolumeKind::EmptyDir => dirs.empty_dir(uid, &format!("{safe}-empty-{n}")),
            VolumeKind::ConfigMap => dirs.config_map(uid, &format!("{safe}-config-{n}")),
            VolumeKind::HostPath => host_root.join(format!("{uid}-{safe}-{n}")),
        };
        if kind != VolumeKind::ConfigMap {
            node::make_dir(&dir, if kind == VolumeKind::EmptyDir { 0o777 } else { 0o755 })?;
        }
        if kind == VolumeKind::HostPath {
            layout.host_paths.push(dir.clone());
        }
        dir_volumes.push((components(path)?, kind, dir, Vec::new()));
    }
    // Single files: an emptyDir of the container's writable files, a
    // ConfigMap of its read-only keys.
    let files_dir = dirs.empty_dir(uid, &format!("{safe}-files"));
    let keys_dir = dirs.config_map(uid, &format!("{safe}-keys"));
    let mode_of = |path: &str| spec.files.iter().find(|(p, _)| p == path).map_or(0o644, |(_, m)| *m);
    for (n, path) in spec.volume_files.iter().enumerate() {
        let mode = mode_of(path);
        node::write_file(&files_dir.join(format!("f{n}")), &content(path, mode, agent), mode)?;
    }
    if !spec.volume_files.is_empty() {
        node::make_dir(&files_dir, 0o777)?;
    }
    let single_keys: Vec<Key> = spec
        .config_map_files
        .iter()
        .enumerate()
        .map(|(n, path)| {
            let mode = mode_of(path);
            Key { path: format!("f{n}"), data: content(path, mode, agent), mode }
        })
        .collect();
    let mut stamped = String::new();
    if !single_keys.is_empty() {
        stamped = node::write_config_map(&keys_dir, &single_keys, timestamp)?;
    }
    // Each file and directory: in the deepest volume that covers it, else
    // in the image.
    let singles: Vec<&String> = spec.volume_files.iter().chain(&spec.config_map_files).collect();
    for (path, mode) in &spec.files {
        if singles.contains(&path) {
            continue;
        }
        let parts = components(path)?;
        let deepest = dir_volumes.iter_mut().filter(|(v, ..)| is_under(&parts, v)).max_by_key(|(v, ..)| v.len());
        match deepest {
            Some((v, VolumeKind::ConfigMap, _, keys)) => {
                let relative = parts.get(v.len()..).unwrap_or_default().join("/");
                keys.push(Key { path: relative, data: content(path, *mode, agent), mode: *mode });
            }
            Some((v, _, dir, _)) => {
                let host = parts.get(v.len()..).unwrap_or_default().iter().fold(dir.clone(), |p, c| p.join(c));
                node::write_file(&host, &content(path, *mode, agent), *mode)?;
            }
            None if *mode & 0o111 != 0 => layout.entries.push(Entry::Executable { path: path.clone(), mode: *mode }),
            None => {
                let data = match &spec.passwd {
                    Some(passwd) if path == "/etc/passwd" => passwd.clone().into_bytes(),
                    _ => content(path, *mode, agent),
                };
                layout.entries.push(Entry::File { path: path.clone(), mode: *mode, data })
            }
        }
    }
    for path in &spec.dirs {
        let parts = components(path)?;
        if parts.is_empty() {
            continue;
        }
        let deepest = dir_volumes.iter().filter(|(v, ..)| is_under(&parts, v)).max_by_key(|(v, ..)| v.len());
        match deepest {
            Some((_, VolumeKind::ConfigMap, ..)) => {
                return Err(format!("directory `{path}` is in a ConfigMap volume, which holds keys only"));
            }
            // The volume's own directory keeps the kubelet's mode.
            Some((v, ..)) if v.len() == parts.len() => {}
            Some((v, _, dir, _)) => {
                let host = parts.get(v.len()..).unwrap_or_default().iter().fold(dir.clone(), |p, c| p.join(c));
                node::make_dir(&host, 0o755)?;
            }
            None => layout.entries.push(Entry::Dir { path: path.clone(), mode: 0o755 }),
        }
    }
    // The mounts, in the spec's order per kind.
    for (v, kind, dir, keys) in &dir_volumes {
        let path = format!("/{}", v.join("/"));
        if *kind == VolumeKind::ConfigMap {
            node::write_config_map(dir, keys, timestamp)?;
        }
        layout.mounts.push(cri::mount(&path, dir, *kind == VolumeKind::ConfigMap));
    }
    for (n, path) in spec.volume_files.iter().enumerate() {
        layout.mounts.push(cri::mount(path, &files_dir.join(format!("f{n}")), false));
    }
    // subPath: the kubelet resolves `key -> ..data/key` to the real file.
    for (n, path) in spec.config_map_files.iter().enumerate() {
        layout.mounts.push(cri::mount(path, &keys_dir.join(&stamped).join(format!("f{n}")), true));
    }
    layout.mounts.push(cri::mount("/etc/hosts", &dirs.etc_hosts(uid), false));
    let termination = dirs.termination_log(uid, &spec.name, token);
    node::write_file(&termination, b"", 0o666)?;
    layout.mounts.push(cri::mount("/dev/termination-log", &termination, false));
    // The image's skeleton, unless the spec makes a path a file (a
    // scenario may declare /tmp or /etc one) or a volume covers it.
    let taken = |path: &str| {
        let parts = components(path).unwrap_or_default();
        spec.files.iter().any(|(f, _)| is_under(&parts, &components(f).unwrap_or_default()))
            || dir_volumes.iter().any(|(v, ..)| is_under(&parts, v))
    };
    for (dir, mode) in [("/proc", 0o555), ("/dev", 0o755), ("/sys", 0o555), ("/tmp", 0o1777), ("/etc", 0o755)] {
        if !taken(dir) {
            layout.entries.push(Entry::Dir { path: dir.into(), mode });
        }
    }
    for file in NODE_FILES {
        if !taken(file) && !spec.files.iter().any(|(f, _)| f == file) {
            layout.entries.push(Entry::File { path: file.into(), mode: 0o644, data: Vec::new() });
        }
    }
    layout.entries.push(Entry::Executable { path: AGENT_PATH.into(), mode: 0o755 });
    Ok(layout)
}

/// The image of `spec`'s container: the agent as its entrypoint, `entries`
/// its file system.
fn image_spec<'a>(spec: &'a ContainerSpec, agent: &'a [u8], entries: Vec<Entry>) -> image::ImageSpec<'a> {
    image::ImageSpec {
        reference: spec.image_reference(),
        entrypoint: vec![AGENT_PATH.into(), "agent".into()],
        executable: agent,
        entries,
    }
}

/// Imports the images of `specs` in one `ctr` run (one per container
/// costs a second or two each under TCG), so that [`Container::start`]
/// finds them. Of two specs whose images have one name, only the first's
/// goes in (a name holds one image): the other's is imported when its
/// container starts. The images' file systems are laid out in a scratch
/// directory under `workdir`, which is removed.
pub fn prepare_images(specs: &[ContainerSpec], workdir: &Path) -> Result<(), String> {
    let agent = fs::read(node::AGENT_BINARY).map_err(|e| format!("reading {}: {e}", node::AGENT_BINARY))?;
    let scratch = workdir.join("image-layouts");
    let mut names = std::collections::BTreeSet::new();
    let mut images = Vec::new();
    for spec in specs {
        validate(spec)?;
        let name = image::normalize_reference(spec.image_reference())?;
        if !names.insert(name) {
            continue;
        }
        let dirs = KubeletDirs { pods: scratch.join("pods") };
        let layout = lay_out(spec, &dirs, &scratch.join("host"), &agent, "prepare", "prepare")
            .map_err(|e| format!("container `{}`: {e}", spec.name))?;
        images.push(image_spec(spec, &agent, layout.entries));
    }
    let _ = fs::remove_dir_all(&scratch);
    if images.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let (archive, _) = image::build_many(&images)?;
    let mut guard = node::node()?;
    let node = guard.as_mut().ok_or("no node")?;
    node::import(&archive, workdir)?;
    node.timings.images.1 += started.elapsed().as_secs_f64();
    Ok(())
}

/// The last `max` bytes of `path`, lossily decoded, for error messages.
fn tail(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            let text = String::from_utf8_lossy(bytes.get(start..).unwrap_or_default()).trim().to_string();
            if text.is_empty() {
                format!("({} is empty)", path.display())
            } else {
                format!("{}: {text}", path.display())
            }
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// What the guest knows of a staged actor.
#[derive(Debug, Clone)]
struct StagedInfo {
    /// Its pid in the container's pid namespace.
    ns_pid: u32,
    actor: Actor,
}

/// A running container (see the module doc). Created by
/// [`Container::start`]; torn down by [`Container::stop`] or on drop.
#[derive(Debug)]
pub struct Container {
    spec: ContainerSpec,
    pod: Pod,
    /// containerd's container id.
    id: String,
    sandbox_id: String,
    /// The agent's pid on the guest (the initial pid namespace).
    agent_pid: u32,
    /// The cgroup containerd gave it (`linux.cgroupsPath`).
    cgroup: PathBuf,
    /// Its CRI log file.
    log: PathBuf,
    /// hostPath directories made for it.
    host_paths: Vec<PathBuf>,
    to_agent: Option<File>,
    from_agent: Option<LineReader>,
    staged: BTreeMap<u32, StagedInfo>,
    /// Set when the link to the agent can no longer be trusted.
    broken: Option<String>,
    stopped: bool,
}

/// Reads `linux.cgroupsPath` from a bundle's config.json.
fn bundle_cgroup(bundle: &Path) -> Result<PathBuf, String> {
    let path = bundle.join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let config: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let cgroups = config
        .pointer("/linux/cgroupsPath")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{} has no linux.cgroupsPath", path.display()))?;
    Ok(PathBuf::from(CGROUP_ROOT).join(cgroups.trim_start_matches('/')))
}

impl Container {
    /// Builds and imports the container's image, runs its pod's sandbox
    /// (unless the pod has one), creates and starts the container through
    /// the CRI, and waits for its agent to connect and say `ready`.
    /// `workdir` holds the image archive while it is imported.
    pub fn start(spec: &ContainerSpec, workdir: &Path) -> Result<Container, String> {
        validate(spec)?;
        let what = format!("container `{}`", spec.name);
        let pod = spec.pod();
        let token = link::new_token(&spec.name);
        link::listen().map_err(|e| format!("{what}: {e}"))?;
        let agent = fs::read(node::AGENT_BINARY).map_err(|e| format!("{what}: reading {}: {e}", node::AGENT_BINARY))?;
        let dirs = KubeletDirs::guest();
        let layout = lay_out(spec, &dirs, Path::new(node::HOST_PATH_ROOT), &agent, &token, &node::timestamp())
            .map_err(|e| format!("{what}: laying out its volumes: {e}"))?;
        let mut guard = node::node().map_err(|e| format!("{what}: {e}"))?;
        let node = guard.as_mut().ok_or_else(|| format!("{what}: no node"))?;

        let started = Instant::now();
        let archive = image::build(&image_spec(spec, &agent, layout.entries)).map_err(|e| format!("{what}: {e}"))?;
        // Imported already ([`prepare_images`]), or now.
        let present = node.cri.image_id(&archive.name).map_err(|e| format!("{what}: {e}"))?;
        if present.as_deref() != Some(archive.id.as_str()) {
            node::import(&archive, workdir).map_err(|e| format!("{what}: {e}"))?;
            match node.cri.image_id(&archive.name).map_err(|e| format!("{what}: {e}"))? {
                Some(id) if id == archive.id => {}
                other => {
                    return Err(format!(
                        "{what}: containerd has image `{}` as {other:?}, not {}",
                        archive.name, archive.id
                    ))
                }
            }
        }
        node.timings.images.0 += 1;
        node.timings.images.1 += started.elapsed().as_secs_f64();

        let sandbox_id = node.sandbox(&pod).map_err(|e| format!("{what}: {e}"))?;
        let request = ContainerRequest {
            name: spec.name.clone(),
            image_id: archive.id.clone(),
            image_reference: spec.image_reference().to_string(),
            envs: vec![(link::LINK_ENV.into(), link::LINK_ADDR.into()), (link::AGENT_ENV.into(), token.clone())],
            mounts: layout.mounts,
            privileged: spec.privileged,
        };
        let log = pod.log_directory().join(request.log_path());
        let started = Instant::now();
        let id = match node.cri.create_container(&sandbox_id, &pod, &request) {
            Ok(id) => id,
            Err(e) => {
                let released = node.release(&pod).err().map(|r| format!("; {r}")).unwrap_or_default();
                return Err(format!("{what}: {e}{released}"));
            }
        };
        let start = node.cri.start_container(&id, &spec.name);
        node.timings.containers.0 += 1;
        node.timings.containers.1 += started.elapsed().as_secs_f64();
        drop(guard);
        let mut container = Container {
            spec: spec.clone(),
            pod,
            id,
            sandbox_id,
            agent_pid: 0,
            cgroup: PathBuf::new(),
            log,
            host_paths: layout.host_paths,
            to_agent: None,
            from_agent: None,
            staged: BTreeMap::new(),
            broken: None,
            stopped: false,
        };
        if let Err(e) = start {
            let msg = format!("{what}: {e}; {}", tail(&container.log, 1500));
            return Err(container.fail_start(msg));
        }
        let stream = match link::wait_for(&token, AGENT_READY_TIMEOUT) {
            Ok(stream) => stream,
            Err(e) => {
                link::forget(&token);
                let msg = format!("{}: {e}; {}", container.what(), container.state_and_log());
                return Err(container.fail_start(msg));
            }
        };
        let (to_agent, from_agent) = match stream.try_clone() {
            Ok(clone) => (File::from(OwnedFd::from(clone)), LineReader::new(OwnedFd::from(stream))),
            Err(e) => return Err(container.fail_start(format!("{what}: duplicating its link: {e}"))),
        };
        container.to_agent = Some(to_agent);
        container.from_agent = Some(from_agent);
        match container.read_reply(AGENT_READY_TIMEOUT, "waiting for the agent's `ready`") {
            Ok(Reply::Ready(_)) => {}
            Ok(other) => {
                let msg = format!("{what}: the agent greeted with `{}` instead of `ready`", other.to_line());
                return Err(container.fail_start(msg));
            }
            Err(e) => return Err(container.fail_start(e)),
        }
        let found = container.find_pid_and_cgroup();
        match found {
            Ok((pid, cgroup)) => {
                container.agent_pid = pid;
                container.cgroup = cgroup;
                Ok(container)
            }
            Err(e) => {
                let msg = format!("{}: {e}", container.what());
                Err(container.fail_start(msg))
            }
        }
    }

    /// The agent's guest pid (ContainerStatus's `info.pid`) and the
    /// container's cgroup (its bundle's `linux.cgroupsPath`).
    fn find_pid_and_cgroup(&self) -> Result<(u32, PathBuf), String> {
        let mut guard = node::node()?;
        let node = guard.as_mut().ok_or("no node")?;
        let (_, info) = node.cri.container_status(&self.id, &self.spec.name)?;
        let pid = info
            .get("pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("ContainerStatus gives no pid: {info}"))?;
        Ok((pid, bundle_cgroup(&self.bundle_dir())?))
    }

    /// The container's state as the CRI reports it, and its log's tail.
    fn state_and_log(&self) -> String {
        let state = node::node().ok().and_then(|mut guard| {
            guard.as_mut().map(|node| match node.cri.container_status(&self.id, &self.spec.name) {
                Ok((status, _)) => format!(
                    "state {:?}, exit code {}, reason `{}` `{}`",
                    k8s_cri::v1::ContainerState::try_from(status.state).map_or("?".into(), |s| format!("{s:?}")),
                    status.exit_code,
                    status.reason,
                    status.message
                ),
                Err(e) => e,
            })
        });
        format!("{}; {}", state.unwrap_or_else(|| "no status".into()), tail(&self.log, 1500))
    }

    /// Tears the container down after a failed start; returns `msg` with
    /// whatever the teardown adds.
    fn fail_start(mut self, msg: String) -> String {
        match self.teardown() {
            Ok(()) => msg,
            Err(e) => format!("{msg}; tearing down: {e}"),
        }
    }

    /// The container's description for messages: name and short id.
    fn what(&self) -> String {
        format!("container `{}` ({})", self.spec.name, cri::short(&self.id))
    }

    /// containerd's id of the container.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// containerd's id of its pod's sandbox.
    pub fn sandbox_id(&self) -> &str {
        &self.sandbox_id
    }

    /// The pod it is in.
    pub fn pod(&self) -> &Pod {
        &self.pod
    }

    /// The agent's pid on the guest.
    pub fn agent_pid(&self) -> u32 {
        self.agent_pid
    }

    /// The container's cgroup directory on the guest's cgroupfs, as
    /// containerd named it: `/sys/fs/cgroup/kubepods/besteffort/pod<uid>/<id>`.
    pub fn cgroup_dir(&self) -> PathBuf {
        self.cgroup.clone()
    }

    /// The spec the container was started with.
    pub fn spec(&self) -> &ContainerSpec {
        &self.spec
    }

    /// containerd's bundle directory:
    /// `/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>`.
    pub fn bundle_dir(&self) -> PathBuf {
        PathBuf::from(BUNDLE_ROOT).join(&self.id)
    }

    /// Where container path `path` is reached from the guest: through
    /// `/proc/<agent pid>/root`, the container's own root and mounts.
    /// Fails on a relative or non-canonical path.
    pub fn host_path(&self, path: &str) -> Result<PathBuf, String> {
        let parts = components(path)?;
        Ok(parts.iter().fold(PathBuf::from(format!("/proc/{}/root", self.agent_pid)), |p, c| p.join(c)))
    }

    /// The guest-side (initial pid namespace) pid of a staged actor that has
    /// not performed yet, found through the container's `cgroup.procs` and
    /// each process's `NSpid`.
    pub fn staged_pid(&self, staged: u32) -> Result<u32, String> {
        let info = self.staged.get(&staged).ok_or_else(|| format!("{}: no staged actor {staged}", self.what()))?;
        let procs_path = self.cgroup_dir().join("cgroup.procs");
        let procs = fs::read_to_string(&procs_path).map_err(|e| format!("reading {}: {e}", procs_path.display()))?;
        for pid in procs.lines() {
            let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
            let ns_pid = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|p| p.parse::<u32>().ok());
            if ns_pid == Some(info.ns_pid) {
                return pid.parse().map_err(|_| format!("bad pid `{pid}` in {}", procs_path.display()));
            }
        }
        Err(format!(
            "{}: staged actor {staged} ({}, pid {} in the container) is not in {}",
            self.what(),
            info.actor,
            info.ns_pid,
            procs_path.display()
        ))
    }

    /// Starts a process inside the container whose executable
    /// (`/proc/self/exe`) is `actor.exe`, whose `comm` is `actor.name` (or
    /// the executable's basename, cut to 15 bytes by the kernel), and which
    /// leads a new session, with a controlling terminal iff
    /// `actor.interactive`. When `actor.exe` does not exist it is first
    /// created (through [`Container::host_path`]: in the overlay's upper
    /// layer, or a volume) as a copy of the agent binary, mode 0755, with
    /// its parent directories. The process does all of this
    /// before this returns, and then waits for exactly one
    /// [`Container::perform`]. Returns its id.
    pub fn stage(&mut self, actor: &Actor) -> Result<u32, String> {
        let what = format!("{}: staging {actor}", self.what());
        let host = self.host_path(&actor.exe).map_err(|e| format!("{what}: {e}"))?;
        if fs::symlink_metadata(&host).is_err() {
            let agent = fs::read(node::AGENT_BINARY).map_err(|e| format!("{what}: {}: {e}", node::AGENT_BINARY))?;
            node::write_file(&host, &agent, 0o755).map_err(|e| format!("{what}: {e}"))?;
        }
        if let Some(name) = &actor.name {
            if name.contains('\0') {
                return Err(format!("{what}: the name contains NUL"));
            }
        }
        let req = Request::Stage {
            exe: actor.exe.clone(),
            name: actor.name.clone(),
            interactive: actor.interactive,
            uid: actor.uid,
        };
        match self.request(&req, STAGE_TIMEOUT + EXIT_TIMEOUT + GUEST_SLACK).map_err(|e| format!("{what}: {e}"))? {
            Reply::Staged { id, pid } => {
                self.staged.insert(id, StagedInfo { ns_pid: pid, actor: actor.clone() });
                Ok(id)
            }
            Reply::Err { errno, detail } => Err(format!("{what}: {detail} (errno {errno})")),
            other => Err(self.break_link(format!("{what}: unexpected reply `{}`", other.to_line()))),
        }
    }

    /// Makes staged actor `staged` perform `op` as one syscall (see
    /// [`AgentOp`]) and end. Returns the syscall's errno and how the actor
    /// ended; `Err` when the op could not be carried out at all (no such
    /// actor, a path with NUL, the actor died or hung, the agent is gone).
    pub fn perform(&mut self, staged: u32, op: &AgentOp) -> Result<Outcome, String> {
        let what = format!("{}: performing `{op}`", self.what());
        let actor = self.staged.get(&staged).map(|i| i.actor.to_string());
        let what = match actor {
            Some(actor) => format!("{what} as {actor} (staged {staged})"),
            None => return Err(format!("{what}: no staged actor {staged} (never staged, or it performed already)")),
        };
        if op.strings().iter().any(|s| s.contains('\0')) {
            return Err(format!("{what}: a path or name contains NUL"));
        }
        let req = Request::Perform { staged, op: op.clone() };
        let reply = self.request(&req, PERFORM_TIMEOUT + 2 * EXIT_TIMEOUT + GUEST_SLACK);
        // The agent forgets the actor whatever the answer.
        self.staged.remove(&staged);
        match reply.map_err(|e| format!("{what}: {e}"))? {
            Reply::Outcome { errno, completed, signal, comm, detail } => {
                Ok(Outcome { errno, killed_by: (signal != 0).then_some(signal), exec_comm: comm, detail, completed })
            }
            Reply::Err { errno, detail } => Err(format!("{what}: {detail} (errno {errno})")),
            other => Err(self.break_link(format!("{what}: unexpected reply `{}`", other.to_line()))),
        }
    }

    /// Sends `req` and reads its reply, waiting at most `timeout`.
    fn request(&mut self, req: &Request, timeout: Duration) -> Result<Reply, String> {
        if let Some(why) = &self.broken {
            return Err(format!("the link to the agent broke earlier: {why}"));
        }
        let line = req.to_line();
        let sent = match self.to_agent.as_mut() {
            Some(to_agent) => write_line(to_agent, &line).map_err(|e| e.to_string()),
            None => Err("the link to the agent is closed".to_string()),
        };
        if let Err(e) = sent {
            let msg = format!("sending `{line}` to the agent: {e}; {}", self.state_and_log());
            return Err(self.break_link(msg));
        }
        self.read_reply(timeout, &format!("waiting for the reply to `{line}`"))
    }

    /// Reads one reply; any failure breaks the link.
    fn read_reply(&mut self, timeout: Duration, doing: &str) -> Result<Reply, String> {
        let read = match self.from_agent.as_mut() {
            Some(from_agent) => from_agent.read_line(timeout),
            None => return Err(self.break_link(format!("{doing}: the link to the agent is closed"))),
        };
        let failure = match read {
            Ok(Some(line)) => match Reply::parse(&line) {
                Ok(reply) => return Ok(reply),
                Err(e) => format!("{doing}: {e}"),
            },
            Ok(None) => format!("{doing}: the agent closed its link; {}", self.state_and_log()),
            Err(e) => format!("{doing}: {e}; {}", self.state_and_log()),
        };
        Err(self.break_link(failure))
    }

    /// Marks the link unusable; returns `why`, prefixed with the container.
    fn break_link(&mut self, why: String) -> String {
        let msg = if why.starts_with("container `") { why } else { format!("{}: {why}", self.what()) };
        self.broken = Some(msg.clone());
        msg
    }

    /// Closes the agent's link (the agent exits, and as pid 1 of the
    /// container's pid namespace takes every staged actor with it), stops
    /// and removes the container through the CRI, checks that its cgroup
    /// is gone, and removes its pod's sandbox with the pod's last
    /// container. Errors name each step that failed; the teardown goes on
    /// after a failure.
    pub fn stop(mut self) -> Result<(), String> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        self.broken.get_or_insert_with(|| "the container was stopped".to_string());
        self.to_agent = None;
        self.from_agent = None;
        let mut errors = Vec::new();
        match node::node() {
            Ok(mut guard) => match guard.as_mut() {
                Some(node) => {
                    if let Err(e) = node.cri.stop_container(&self.id, &self.spec.name, STOP_TIMEOUT_S) {
                        errors.push(e);
                    }
                    if let Err(e) = node.cri.remove_container(&self.id, &self.spec.name) {
                        errors.push(e);
                    }
                    if let Err(e) = node.release(&self.pod) {
                        errors.push(e);
                    }
                }
                None => errors.push("no node".into()),
            },
            Err(e) => errors.push(e),
        }
        if !self.cgroup.as_os_str().is_empty() {
            let deadline = Instant::now() + CGROUP_GONE_TIMEOUT;
            while self.cgroup.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.cgroup.exists() {
                errors.push(format!("its cgroup {} is still there", self.cgroup.display()));
            }
        }
        for dir in &self.host_paths {
            if let Err(e) = fs::remove_dir_all(dir) {
                errors.push(format!("removing hostPath {}: {e}", dir.display()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: stopping: {}", self.what(), errors.join("; ")))
        }
    }
}

impl Drop for Container {
    /// Best effort: [`Container::stop`] reports what this ignores.
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            pod_uid: "2d5d6f2a-0000-4000-8000-000000000001".into(),
            image: Some("docker.io/library/nginx:1.25".into()),
            namespace: Some("default".into()),
            pod: Some("web-0".into()),
            labels: vec![("app".into(), "web".into())],
            volumes: vec!["/data".into()],
            volume_files: vec!["/etc/config.yaml".into()],
            config_maps: vec!["/etc/conf".into()],
            config_map_files: vec!["/etc/app.key".into()],
            host_paths: vec!["/srv/host".into()],
            files: vec![
                ("/usr/bin/ls".into(), 0o755),
                ("/data/existing.txt".into(), 0o640),
                ("/etc/conf/app.yaml".into(), 0o644),
                ("/etc/config.yaml".into(), 0o600),
                ("/srv/host/tool".into(), 0o755),
                ("/etc/hosts".into(), 0o644),
                ("/etc/passwd".into(), 0o644),
            ],
            dirs: vec!["/var/cache".into(), "/data/sub".into()],
            privileged: false,
            passwd: Some("root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n".into()),
        }
    }

    fn scratch(name: &str) -> Result<PathBuf, String> {
        let dir = std::env::temp_dir().join(format!("d4c-vmtest-bundle-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(dir)
    }

    #[test]
    fn a_spec_is_laid_out_as_volumes_and_an_image() -> Result<(), String> {
        let root = scratch("layout")?;
        let dirs = KubeletDirs { pods: root.join("pods") };
        let layout = lay_out(&spec(), &dirs, &root.join("host"), b"AGENT", "tok", "2026_12_07_00_00_00.000000000")?;
        let uid = "2d5d6f2a-0000-4000-8000-000000000001";
        let pod = root.join("pods").join(uid);
        let mounts: Vec<(&str, String, bool)> = layout
            .mounts
            .iter()
            .map(|m| {
                (m.container_path.as_str(), m.host_path.replace(&pod.to_string_lossy().into_owned(), "POD"), m.readonly)
            })
            .collect();
        let host = root.join("host").join(format!("{uid}-web-2")).to_string_lossy().into_owned();
        assert_eq!(
            mounts,
            [
                ("/data", "POD/volumes/kubernetes.io~empty-dir/web-empty-0".to_string(), false),
                ("/etc/conf", "POD/volumes/kubernetes.io~configmap/web-config-1".to_string(), true),
                ("/srv/host", host.clone(), false),
                ("/etc/config.yaml", "POD/volumes/kubernetes.io~empty-dir/web-files/f0".to_string(), false),
                (
                    "/etc/app.key",
                    "POD/volumes/kubernetes.io~configmap/web-keys/..2026_12_07_00_00_00.000000000/f0".to_string(),
                    true
                ),
                ("/etc/hosts", "POD/etc-hosts".to_string(), false),
                ("/dev/termination-log", "POD/containers/web/tok".to_string(), false),
            ]
        );
        let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o7777).map_err(|e| e.to_string());
        let empty = pod.join("volumes/kubernetes.io~empty-dir/web-empty-0");
        assert_eq!(mode(&empty)?, 0o777);
        assert_eq!(mode(&empty.join("existing.txt"))?, 0o640);
        assert!(empty.join("sub").is_dir());
        let file = pod.join("volumes/kubernetes.io~empty-dir/web-files/f0");
        assert_eq!(mode(&file)?, 0o600);
        let conf = pod.join("volumes/kubernetes.io~configmap/web-config-1");
        assert_eq!(fs::read_link(conf.join("app.yaml")).map_err(|e| e.to_string())?, PathBuf::from("..data/app.yaml"));
        assert_eq!(fs::read(Path::new(&host).join("tool")).map_err(|e| e.to_string())?, b"AGENT");
        assert_eq!(layout.host_paths, [PathBuf::from(&host)]);
        // The image: the rootfs's files, skeleton and agent; nothing a
        // volume covers.
        let paths: Vec<&str> = layout
            .entries
            .iter()
            .map(|e| match e {
                Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Executable { path, .. } => path.as_str(),
            })
            .collect();
        assert_eq!(
            paths,
            [
                "/usr/bin/ls",
                "/etc/hosts",
                "/etc/passwd",
                "/var/cache",
                "/proc",
                "/dev",
                "/sys",
                "/tmp",
                "/etc",
                "/etc/hostname",
                "/etc/resolv.conf",
                AGENT_PATH
            ]
        );
        assert!(layout.entries.contains(&Entry::Executable { path: "/usr/bin/ls".into(), mode: 0o755 }));
        // Declared users: the image's /etc/passwd is the scenario's text.
        assert!(layout.entries.contains(&Entry::File {
            path: "/etc/passwd".into(),
            mode: 0o644,
            data: b"root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n".to_vec(),
        }));
        fs::remove_dir_all(&root).map_err(|e| e.to_string())
    }

    #[test]
    fn a_file_where_the_skeleton_has_a_directory_wins() -> Result<(), String> {
        let root = scratch("skeleton")?;
        let dirs = KubeletDirs { pods: root.join("pods") };
        let s = ContainerSpec { files: vec![("/tmp".into(), 0o644), ("/etc".into(), 0o644)], ..spec() };
        let s = ContainerSpec {
            volumes: vec![],
            volume_files: vec![],
            config_maps: vec![],
            config_map_files: vec![],
            host_paths: vec![],
            ..s
        };
        let layout = lay_out(&s, &dirs, &root.join("host"), b"A", "t", "t")?;
        assert!(!layout
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Dir { path, .. } if path == "/tmp" || path == "/etc")));
        assert!(!layout.entries.iter().any(|e| matches!(e, Entry::File { path, .. } if path == "/etc/hosts")));
        fs::remove_dir_all(&root).map_err(|e| e.to_string())
    }

    #[test]
    fn specs_are_validated() {
        assert_eq!(validate(&spec()), Ok(()));
        let bad = [
            ContainerSpec { pod_uid: "a/b".into(), ..spec() },
            ContainerSpec { name: String::new(), ..spec() },
            ContainerSpec { files: vec![("rel".into(), 0o644)], ..spec() },
            ContainerSpec { files: vec![("/x".into(), 0o17777)], ..spec() },
            ContainerSpec { files: vec![("/data".into(), 0o644)], ..spec() },
            ContainerSpec { volume_files: vec!["/data".into()], ..spec() },
            ContainerSpec { volumes: vec!["/".into()], ..spec() },
            ContainerSpec { host_paths: vec!["/a/../b".into()], ..spec() },
        ];
        for s in bad {
            assert!(validate(&s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn the_pod_has_the_kubelets_defaults() {
        let s = ContainerSpec { namespace: None, pod: None, image: None, ..spec() };
        let pod = s.pod();
        assert_eq!((pod.namespace.as_str(), pod.name.as_str()), (DEFAULT_NAMESPACE, "web"));
        assert_eq!(s.image_reference(), NO_IMAGE);
    }
}
