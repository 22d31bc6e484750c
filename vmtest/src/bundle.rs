//! OCI bundles and runc: one [`Container`] per scenario container, run in
//! the guest exactly as a kubelet-managed containerd would run it (cgroup
//! path, CRI annotations), with the in-container agent as its init process.
//!
//! In: a [`ContainerSpec`] and a work directory on the guest. Out: a
//! running container whose actors can be staged ([`Container::stage`])
//! before any probe is loaded and then made to perform one syscall each
//! ([`Container::perform`]).
//!
//! On the guest, a container is:
//!
//! ```text
//! WORKDIR/runc/                 runc --root (its state, shared)
//! WORKDIR/<id>/config.json      the OCI runtime spec (see `config_json`)
//! WORKDIR/<id>/rootfs/          the root file system, built here: the agent
//!                               at /.d4c/agent, the spec's files, /proc,
//!                               /dev, /sys, /tmp, /etc
//! WORKDIR/<id>/volumes/<n>/     the source of the n-th `volumes` entry
//! WORKDIR/<id>/volume-files/<n> the source of the n-th `volume_files` entry
//! WORKDIR/<id>/runc.log         runc's and the agent's stderr
//! ```
//!
//! [`Container::host_path`] maps a container path to where it lives on the
//! guest, through the volumes, so that a test can check a syscall's effect.
//!
//! Invariants: every file the steps may touch is created before the
//! container starts; after a request fails in a way that may leave a
//! reply unread, the container refuses further requests (a late reply must
//! never be taken for the next one); every wait is bounded; [`Drop`] tears
//! the container down if [`Container::stop`] was not called.

use std::collections::BTreeMap;
use std::fs::{self, File, Permissions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use crate::ops::{Actor, AgentOp, LinkVia, Outcome};
use crate::protocol::{
    write_line, LineReader, Reply, Request, AGENT_READY_TIMEOUT, EXIT_TIMEOUT, GUEST_SLACK, PERFORM_TIMEOUT,
    STAGE_TIMEOUT,
};

/// Where the guest mounts cgroup2.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The agent's path inside every container.
pub const AGENT_PATH: &str = "/.d4c/agent";
/// How long a `runc delete` or a dying `runc run` may take.
const RUNC_TIMEOUT: Duration = Duration::from_secs(20);
/// The Linux capabilities runc knows, all given to the container process.
const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// What a container is: its identity as the kubelet and containerd give it,
/// and the file system state before any step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSpec {
    /// The scenario's container name, e.g. `web` (the CRI container name).
    pub name: String,
    /// The container id: 64 lowercase hex digits, as containerd makes them.
    pub id: String,
    /// The pod's UID, a UUID such as `2d5d6f2a-...`.
    pub pod_uid: String,
    /// The image reference (`io.kubernetes.cri.image-name`), if any.
    pub image: Option<String>,
    /// The pod's namespace (`io.kubernetes.cri.sandbox-namespace`), if any.
    pub namespace: Option<String>,
    /// The pod's name (`io.kubernetes.cri.sandbox-name`), if any.
    pub pod: Option<String>,
    /// Pod labels. Not written into the bundle (containerd does not either);
    /// kept for whoever describes the container to d4c.
    pub labels: Vec<(String, String)>,
    /// Directory volume mounts: absolute container paths, each backed by an
    /// empty guest directory bind-mounted there.
    pub volumes: Vec<String>,
    /// Single-file bind mounts: absolute container paths, each backed by a
    /// guest file (a few bytes of text, mode 0644, unless `files` names the
    /// same path).
    pub volume_files: Vec<String>,
    /// Regular files that exist before the steps, with their modes. A mode
    /// with an execute bit (`0o111`) makes the file a copy of this binary,
    /// so that exec'ing it runs `noop`; otherwise it holds a line of text.
    pub files: Vec<(String, u32)>,
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

/// Where container paths live on the guest.
#[derive(Debug, Clone)]
struct PathMap {
    rootfs: PathBuf,
    /// (container path components, guest directory), in `volumes` order.
    volumes: Vec<(Vec<String>, PathBuf)>,
    /// (container path components, guest file), in `volume_files` order.
    volume_files: Vec<(Vec<String>, PathBuf)>,
}

impl PathMap {
    fn host_path(&self, path: &str) -> Result<PathBuf, String> {
        let parts = components(path)?;
        if let Some((_, file)) = self.volume_files.iter().find(|(c, _)| *c == parts) {
            return Ok(file.clone());
        }
        let is_prefix = |c: &Vec<String>| c.len() <= parts.len() && c.iter().zip(&parts).all(|(a, b)| a == b);
        let deepest = self.volumes.iter().filter(|(c, _)| is_prefix(c)).max_by_key(|(c, _)| c.len());
        let (base, skip) = match deepest {
            Some((c, dir)) => (dir.clone(), c.len()),
            None => (self.rootfs.clone(), 0),
        };
        Ok(parts.iter().skip(skip).fold(base, |p, c| p.join(c)))
    }
}

/// A deterministic 64-hex sandbox id for a pod: every container of one pod
/// shares it, as containers of one pod share their sandbox.
fn sandbox_id(pod_uid: &str) -> String {
    // FNV-1a seeds a splitmix64 stream: not cryptographic, only stable.
    let mut seed =
        pod_uid.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (0..4)
        .map(|_| {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// The cgroup path runc is given (`linux.cgroupsPath`, cgroupfs style):
/// a BestEffort pod's container, as the kubelet's cgroupfs driver names it.
fn cgroups_path(spec: &ContainerSpec) -> String {
    format!("/kubepods/besteffort/pod{}/{}", spec.pod_uid, spec.id)
}

/// The OCI runtime spec (config.json) of `spec`'s container, with its
/// volume sources. `volumes` and `volume_files` pair each container path
/// with its guest source.
fn config_json(spec: &ContainerSpec, volumes: &[(String, PathBuf)], volume_files: &[(String, PathBuf)]) -> Value {
    let caps: Vec<&str> = CAPABILITIES.to_vec();
    let mut mounts: Vec<(usize, Value)> = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ]
    .into_iter()
    .chain(volumes.iter().chain(volume_files).map(|(dest, source)| {
        json!({"destination": dest, "type": "bind", "source": source.to_string_lossy(), "options": ["rbind", "rw"]})
    }))
    .map(|m| (m.get("destination").and_then(Value::as_str).map_or(0, |d| d.split('/').filter(|c| !c.is_empty()).count()), m))
    .collect();
    // A mount must come after every mount above it (`volume "/"` before
    // /proc, `/dev` before `/dev/pts`): a stable sort by depth keeps the
    // usual order otherwise.
    mounts.sort_by_key(|(depth, _)| *depth);
    let mut annotations = serde_json::Map::new();
    let mut annotate = |k: &str, v: &str| {
        annotations.insert(format!("io.kubernetes.cri.{k}"), Value::from(v));
    };
    annotate("container-type", "container");
    annotate("container-name", &spec.name);
    if let Some(image) = &spec.image {
        annotate("image-name", image);
    }
    annotate("sandbox-id", &sandbox_id(&spec.pod_uid));
    if let Some(pod) = &spec.pod {
        annotate("sandbox-name", pod);
    }
    if let Some(ns) = &spec.namespace {
        annotate("sandbox-namespace", ns);
    }
    annotate("sandbox-uid", &spec.pod_uid);
    let hostname = spec.pod.clone().unwrap_or_else(|| spec.name.clone());
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": [AGENT_PATH, "agent"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", format!("HOSTNAME={hostname}")],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": hostname,
        "mounts": mounts.into_iter().map(|(_, m)| m).collect::<Vec<_>>(),
        "annotations": annotations,
        "linux": {
            "cgroupsPath": cgroups_path(spec),
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "maskedPaths": [],
            "readonlyPaths": []
        }
    })
}

/// Checks what `start` relies on: id and pod UID shapes, canonical
/// absolute paths, no path both a volume and a file mount.
fn validate(spec: &ContainerSpec) -> Result<(), String> {
    if spec.id.len() != 64 || !spec.id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("container id `{}` is not 64 lowercase hex digits", spec.id));
    }
    if spec.pod_uid.is_empty() || !spec.pod_uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("pod UID `{}` is not a UUID", spec.pod_uid));
    }
    if spec.name.is_empty() {
        return Err("empty container name".to_string());
    }
    for path in spec.volumes.iter().chain(&spec.volume_files).chain(spec.files.iter().map(|(p, _)| p)) {
        components(path)?;
    }
    for file in &spec.volume_files {
        if components(file)?.is_empty() {
            return Err("a volume file cannot be `/`".to_string());
        }
        if spec.volumes.iter().any(|v| components(v).ok() == components(file).ok()) {
            return Err(format!("`{file}` is both a volume and a volume file"));
        }
    }
    for (path, mode) in &spec.files {
        if *mode > 0o7777 {
            return Err(format!("file `{path}`: mode {mode:o} has bits beyond 07777"));
        }
        if spec.volumes.iter().any(|v| components(v).ok() == components(path).ok()) {
            return Err(format!("`{path}` is both a volume (a directory) and a file"));
        }
    }
    Ok(())
}

/// Writes a regular file at `host` with `mode`: a copy of this binary when
/// the mode has an execute bit, else a line of text naming `path`.
fn write_file(host: &Path, path: &str, mode: u32) -> Result<(), String> {
    if let Some(parent) = host.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    if mode & 0o111 != 0 {
        fs::copy("/proc/self/exe", host).map_err(|e| format!("copying this binary to {}: {e}", host.display()))?;
    } else {
        fs::write(host, format!("d4c-vmtest file {path}\n")).map_err(|e| format!("writing {}: {e}", host.display()))?;
    }
    fs::set_permissions(host, Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {mode:o} {}: {e}", host.display()))
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

/// Waits up to `timeout` for `child` to end.
fn wait_child(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) if Instant::now() >= deadline => return Ok(None),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for pid {}: {e}", child.id())),
        }
    }
}

/// The runc binary: `$D4C_VMTEST_RUNC`, else `runc` from `PATH`.
fn runc_binary() -> String {
    std::env::var("D4C_VMTEST_RUNC").unwrap_or_else(|_| "runc".to_string())
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
    bundle: PathBuf,
    runc_root: PathBuf,
    log: PathBuf,
    paths: PathMap,
    runc: Child,
    to_agent: Option<File>,
    from_agent: LineReader,
    staged: BTreeMap<u32, StagedInfo>,
    /// Set when the link to the agent can no longer be trusted.
    broken: Option<String>,
    stopped: bool,
}

impl Container {
    /// Writes the bundle under `workdir` (created if missing; the bundle
    /// directory `workdir/<id>` must not exist) and starts it with `runc
    /// run --no-pivot`; the agent is its init process. Returns once the
    /// agent said `ready`.
    pub fn start(spec: &ContainerSpec, workdir: &Path) -> Result<Container, String> {
        validate(spec)?;
        let what = format!("container `{}` ({})", spec.name, spec.id.get(..12).unwrap_or(&spec.id));
        let workdir = std::path::absolute(workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
        let bundle = workdir.join(&spec.id);
        let runc_root = workdir.join("runc");
        if bundle.exists() {
            return Err(format!("{what}: bundle {} exists already", bundle.display()));
        }
        for dir in [&bundle, &runc_root] {
            fs::create_dir_all(dir).map_err(|e| format!("{what}: creating {}: {e}", dir.display()))?;
        }
        let rootfs = bundle.join("rootfs");
        let volumes: Vec<(String, PathBuf)> = spec
            .volumes
            .iter()
            .enumerate()
            .map(|(n, v)| (v.clone(), bundle.join("volumes").join(n.to_string())))
            .collect();
        let volume_files: Vec<(String, PathBuf)> = spec
            .volume_files
            .iter()
            .enumerate()
            .map(|(n, v)| (v.clone(), bundle.join("volume-files").join(n.to_string())))
            .collect();
        let to_map = |list: &[(String, PathBuf)]| -> Vec<(Vec<String>, PathBuf)> {
            list.iter()
                .map(|(p, src)| {
                    (components(p).unwrap_or_default().into_iter().map(str::to_string).collect(), src.clone())
                })
                .collect()
        };
        let paths = PathMap { rootfs: rootfs.clone(), volumes: to_map(&volumes), volume_files: to_map(&volume_files) };
        let setup = || -> Result<(), String> {
            fs::create_dir_all(&rootfs).map_err(|e| format!("creating {}: {e}", rootfs.display()))?;
            for (_, dir) in &volumes {
                fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            for (path, file) in &volume_files {
                write_file(file, path, 0o644)?;
            }
            // The skeleton goes through the path map, so that `volume "/"`
            // holds it too.
            // A scenario may declare /tmp or /etc a file: then it is one.
            for (dir, mode) in [("/proc", 0o555), ("/dev", 0o755), ("/sys", 0o555), ("/tmp", 0o1777), ("/etc", 0o755)] {
                if spec.files.iter().any(|(path, _)| path == dir) {
                    continue;
                }
                let host = paths.host_path(dir)?;
                fs::create_dir_all(&host).map_err(|e| format!("creating {}: {e}", host.display()))?;
                fs::set_permissions(&host, Permissions::from_mode(mode))
                    .map_err(|e| format!("chmod {mode:o} {}: {e}", host.display()))?;
            }
            write_file(&paths.host_path(AGENT_PATH)?, AGENT_PATH, 0o755)?;
            for (path, mode) in &spec.files {
                write_file(&paths.host_path(path)?, path, *mode)?;
            }
            let config = config_json(spec, &volumes, &volume_files);
            let text = serde_json::to_string_pretty(&config).map_err(|e| format!("serialising config.json: {e}"))?;
            let config_path = bundle.join("config.json");
            fs::write(&config_path, text).map_err(|e| format!("writing {}: {e}", config_path.display()))
        };
        // Until the container runs, a failure leaves no bundle behind.
        let discard = |e: String| {
            let _ = fs::remove_dir_all(&bundle);
            format!("{what}: {e}")
        };
        setup().map_err(discard)?;
        // THROWAWAY (kernel worktree): the rootfs as an overlay mount.
        {
            let lower = bundle.join("lower");
            let upper = bundle.join("upper");
            let work = bundle.join("work");
            fs::rename(&rootfs, &lower).map_err(|e| discard(format!("rename: {e}")))?;
            for d in [&upper, &work, &rootfs] {
                fs::create_dir_all(d).map_err(|e| discard(format!("mkdir: {e}")))?;
            }
            let st = Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display()))
                .arg(&rootfs)
                .status()
                .map_err(|e| discard(format!("mount: {e}")))?;
            if !st.success() {
                return Err(discard(format!("mount overlay: {st}")));
            }
        }

        let log = bundle.join("runc.log");
        let log_file = File::create(&log).map_err(|e| discard(format!("creating {}: {e}", log.display())))?;
        let mut runc = Command::new(runc_binary())
            .arg("--root")
            .arg(&runc_root)
            .args(["run", "--no-pivot", "--bundle"])
            .arg(&bundle)
            .arg(&spec.id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| discard(format!("starting `{} run`: {e}", runc_binary())))?;
        let (Some(stdin), Some(stdout)) = (runc.stdin.take(), runc.stdout.take()) else {
            let _ = runc.kill();
            let _ = runc.wait();
            return Err(discard("runc's stdio pipes are missing".to_string()));
        };
        let mut container = Container {
            spec: spec.clone(),
            bundle,
            runc_root,
            log,
            paths,
            runc,
            to_agent: Some(File::from(OwnedFd::from(stdin))),
            from_agent: LineReader::new(OwnedFd::from(stdout)),
            staged: BTreeMap::new(),
            broken: None,
            stopped: false,
        };
        match container.read_reply(AGENT_READY_TIMEOUT, "waiting for the agent's `ready`") {
            Ok(Reply::Ready(_)) => Ok(container),
            Ok(other) => {
                let msg = format!("{what}: the agent greeted with `{}` instead of `ready`", other.to_line());
                Err(container.fail_start(msg))
            }
            Err(e) => Err(container.fail_start(e)),
        }
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
        format!("container `{}` ({})", self.spec.name, self.spec.id.get(..12).unwrap_or(&self.spec.id))
    }

    /// The container's cgroup directory on the guest's cgroupfs:
    /// `/sys/fs/cgroup/kubepods/besteffort/pod<uid>/<id>`.
    pub fn cgroup_dir(&self) -> PathBuf {
        PathBuf::from(format!("{CGROUP_ROOT}{}", cgroups_path(&self.spec)))
    }

    /// The spec the container was started with.
    pub fn spec(&self) -> &ContainerSpec {
        &self.spec
    }

    /// The bundle directory (`workdir/<id>`).
    pub fn bundle_dir(&self) -> &Path {
        &self.bundle
    }

    /// Where container path `path` lives on the guest: in a volume's or
    /// volume file's source when it is at or below one (the deepest
    /// volume wins), else in the rootfs. Fails on a relative or
    /// non-canonical path.
    pub fn host_path(&self, path: &str) -> Result<PathBuf, String> {
        self.paths.host_path(path)
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
    /// created in the rootfs (or volume) as a copy of this binary, mode
    /// 0755, with its parent directories. The process does all of this
    /// before this returns, and then waits for exactly one
    /// [`Container::perform`]. Returns its id.
    pub fn stage(&mut self, actor: &Actor) -> Result<u32, String> {
        let what = format!("{}: staging {actor}", self.what());
        let host = self.paths.host_path(&actor.exe).map_err(|e| format!("{what}: {e}"))?;
        if fs::symlink_metadata(&host).is_err() {
            write_file(&host, &actor.exe, 0o755).map_err(|e| format!("{what}: {e}"))?;
        }
        if let Some(name) = &actor.name {
            if name.contains('\0') {
                return Err(format!("{what}: the name contains NUL"));
            }
        }
        let req = Request::Stage { exe: actor.exe.clone(), name: actor.name.clone(), interactive: actor.interactive };
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
            None => Err("the agent's stdin is closed".to_string()),
        };
        if let Err(e) = sent {
            return Err(self.break_link(format!("sending `{line}` to the agent: {e}; {}", tail(&self.log, 1500))));
        }
        self.read_reply(timeout, &format!("waiting for the reply to `{line}`"))
    }

    /// Reads one reply; any failure breaks the link.
    fn read_reply(&mut self, timeout: Duration, doing: &str) -> Result<Reply, String> {
        let failure = match self.from_agent.read_line(timeout) {
            Ok(Some(line)) => match Reply::parse(&line) {
                Ok(reply) => return Ok(reply),
                Err(e) => format!("{doing}: {e}"),
            },
            Ok(None) => {
                let status = match wait_child(&mut self.runc, EXIT_TIMEOUT) {
                    Ok(Some(status)) => format!("runc run ended with {status}"),
                    Ok(None) => "runc run is still running".to_string(),
                    Err(e) => e,
                };
                format!("{doing}: the agent closed its stdout ({status}); {}", tail(&self.log, 1500))
            }
            Err(e) => format!("{doing}: {e}; {}", tail(&self.log, 1500)),
        };
        Err(self.break_link(failure))
    }

    /// Marks the link unusable; returns `why`, prefixed with the container.
    fn break_link(&mut self, why: String) -> String {
        let msg = if why.starts_with("container `") { why } else { format!("{}: {why}", self.what()) };
        self.broken = Some(msg.clone());
        msg
    }

    /// Kills and deletes the container (its agent and every staged actor
    /// with it), waits for `runc run` to end, removes the bundle, and
    /// checks that the container's cgroup is gone. Errors name each step
    /// that failed; the teardown goes on after a failure.
    pub fn stop(mut self) -> Result<(), String> {
        self.teardown()
    }

    fn runc_command(&self, args: &[&str]) -> Result<(), String> {
        let log =
            fs::OpenOptions::new().append(true).open(&self.log).map_err(|e| format!("{}: {e}", self.log.display()));
        let mut cmd = Command::new(runc_binary());
        cmd.arg("--root").arg(&self.runc_root).args(args).stdin(Stdio::null()).stdout(Stdio::null());
        if let Ok(log) = log {
            cmd.stderr(log);
        }
        let mut child = cmd.spawn().map_err(|e| format!("starting `runc {}`: {e}", args.join(" ")))?;
        match wait_child(&mut child, RUNC_TIMEOUT)? {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(format!("`runc {}` ended with {status}; {}", args.join(" "), tail(&self.log, 600))),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("`runc {}` took over {}s; killed", args.join(" "), RUNC_TIMEOUT.as_secs()))
            }
        }
    }

    fn teardown(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        self.broken.get_or_insert_with(|| "the container was stopped".to_string());
        let mut errors = Vec::new();
        // The agent exits when its stdin closes; as pid 1 of the pid
        // namespace it takes every staged actor with it, and `runc run`
        // deletes the container when its init ends.
        self.to_agent = None;
        let ended = match wait_child(&mut self.runc, Duration::from_secs(5)) {
            Ok(ended) => ended.is_some(),
            Err(e) => {
                errors.push(e);
                false
            }
        };
        if !ended {
            if let Err(e) = self.runc_command(&["delete", "--force", &self.spec.id]) {
                errors.push(e);
            }
            match wait_child(&mut self.runc, RUNC_TIMEOUT) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let _ = self.runc.kill();
                    let _ = self.runc.wait();
                    errors.push(format!("`runc run` did not end within {}s; killed", RUNC_TIMEOUT.as_secs()));
                }
                Err(e) => errors.push(e),
            }
        }
        if self.runc_root.join(&self.spec.id).exists() {
            if let Err(e) = self.runc_command(&["delete", "--force", &self.spec.id]) {
                errors.push(e);
            }
        }
        let cgroup = self.cgroup_dir();
        if cgroup.exists() {
            if let Err(e) = fs::remove_dir(&cgroup) {
                errors.push(format!("cgroup {} is still there and rmdir failed: {e}", cgroup.display()));
            }
        }
        // The pod's cgroup goes when its last container does; other
        // containers of the pod may still run, so failure is normal.
        if let Some(pod) = cgroup.parent() {
            let _ = fs::remove_dir(pod);
        }
        let _ = Command::new("umount").arg("-l").arg(self.bundle.join("rootfs")).status();
        if let Err(e) = fs::remove_dir_all(&self.bundle) {
            errors.push(format!("removing {}: {e}", self.bundle.display()));
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

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "web".into(),
            id: "ab".repeat(32),
            pod_uid: "2d5d6f2a-0000-4000-8000-000000000001".into(),
            image: Some("docker.io/library/nginx:1.25".into()),
            namespace: Some("default".into()),
            pod: Some("web-0".into()),
            labels: vec![("app".into(), "web".into())],
            volumes: vec!["/data".into(), "/".into()],
            volume_files: vec!["/etc/config.yaml".into()],
            files: vec![("/usr/bin/ls".into(), 0o755)],
        }
    }

    #[test]
    fn config_has_the_kubelet_shape() {
        let s = spec();
        let vols = vec![("/data".to_string(), PathBuf::from("/w/v/0")), ("/".to_string(), PathBuf::from("/w/v/1"))];
        let files = vec![("/etc/config.yaml".to_string(), PathBuf::from("/w/f/0"))];
        let c = config_json(&s, &vols, &files);
        assert_eq!(
            c.pointer("/linux/cgroupsPath").and_then(Value::as_str),
            Some(format!("/kubepods/besteffort/pod2d5d6f2a-0000-4000-8000-000000000001/{}", "ab".repeat(32)).as_str())
        );
        assert_eq!(c.pointer("/process/terminal"), Some(&Value::Bool(false)));
        assert_eq!(c.pointer("/process/args/0").and_then(Value::as_str), Some(AGENT_PATH));
        let ann = |k: &str| c.pointer(&format!("/annotations/io.kubernetes.cri.{k}")).and_then(Value::as_str);
        assert_eq!(ann("container-type"), Some("container"));
        assert_eq!(ann("container-name"), Some("web"));
        assert_eq!(ann("image-name"), Some("docker.io/library/nginx:1.25"));
        assert_eq!(ann("sandbox-name"), Some("web-0"));
        assert_eq!(ann("sandbox-namespace"), Some("default"));
        assert_eq!(ann("sandbox-uid"), Some("2d5d6f2a-0000-4000-8000-000000000001"));
        let sandbox = ann("sandbox-id").unwrap_or_default();
        assert_eq!(sandbox.len(), 64);
        assert!(sandbox.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(sandbox, sandbox_id("2d5d6f2a-0000-4000-8000-000000000001"));
        assert_ne!(sandbox, sandbox_id("2d5d6f2a-0000-4000-8000-000000000002"));
        // Volume "/" before /proc; /dev before /dev/pts; all caps.
        let dests: Vec<&str> = c
            .pointer("/mounts")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(|m| m.get("destination").and_then(Value::as_str)).collect())
            .unwrap_or_default();
        assert_eq!(dests, ["/", "/proc", "/dev", "/sys", "/data", "/dev/pts", "/dev/shm", "/etc/config.yaml"]);
        assert_eq!(c.pointer("/process/capabilities/effective").and_then(Value::as_array).map(Vec::len), Some(41));
        assert_eq!(c.pointer("/linux/maskedPaths"), Some(&json!([])));
    }

    #[test]
    fn container_paths_map_through_volumes() -> Result<(), String> {
        let map = PathMap {
            rootfs: "/b/rootfs".into(),
            volumes: vec![(vec!["data".into()], "/b/v0".into()), (vec!["data".into(), "sub".into()], "/b/v1".into())],
            volume_files: vec![(vec!["etc".into(), "c.yaml".into()], "/b/f0".into())],
        };
        assert_eq!(map.host_path("/usr/bin/ls")?, PathBuf::from("/b/rootfs/usr/bin/ls"));
        assert_eq!(map.host_path("/data")?, PathBuf::from("/b/v0"));
        assert_eq!(map.host_path("/data/x")?, PathBuf::from("/b/v0/x"));
        assert_eq!(map.host_path("/data/sub/y")?, PathBuf::from("/b/v1/y"));
        assert_eq!(map.host_path("/dataset")?, PathBuf::from("/b/rootfs/dataset"));
        assert_eq!(map.host_path("/etc/c.yaml")?, PathBuf::from("/b/f0"));
        assert!(map.host_path("relative").is_err());
        assert!(map.host_path("/a/../etc/shadow").is_err());
        let root = PathMap { volumes: vec![(vec![], "/b/v0".into())], ..map };
        assert_eq!(root.host_path("/etc/passwd")?, PathBuf::from("/b/v0/etc/passwd"));
        Ok(())
    }

    #[test]
    fn specs_are_validated() {
        assert_eq!(validate(&spec()), Ok(()));
        let bad = [
            ContainerSpec { id: "AB".repeat(32), ..spec() },
            ContainerSpec { id: "ab".into(), ..spec() },
            ContainerSpec { pod_uid: "a/b".into(), ..spec() },
            ContainerSpec { files: vec![("rel".into(), 0o644)], ..spec() },
            ContainerSpec { files: vec![("/x".into(), 0o17777)], ..spec() },
            ContainerSpec { files: vec![("/data".into(), 0o644)], ..spec() },
            ContainerSpec { volume_files: vec!["/data".into()], ..spec() },
        ];
        for s in bad {
            assert!(validate(&s).is_err(), "{s:?}");
        }
    }
}
