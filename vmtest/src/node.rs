//! The kubelet's part of a node, as much of it as the VM suite needs: pods
//! (one sandbox per pod UID, shared by the pod's containers), volumes laid
//! out on the guest as the kubelet lays them out, and images imported into
//! containerd. [`crate::bundle::Container`] uses it; containerd does the
//! rest through the CRI ([`crate::cri`]).
//!
//! Volumes, under `/var/lib/kubelet/pods/<uid>/` ([`KubeletDirs`]):
//!
//! - an emptyDir: `volumes/kubernetes.io~empty-dir/<name>/`, mode 0777;
//! - a ConfigMap: `volumes/kubernetes.io~configmap/<name>/` in the
//!   kubelet's atomic-writer layout: the keys in a `..<timestamp>`
//!   directory, `..data` a symlink to it, and each key a symlink
//!   `key -> ..data/key`; mounted read-only (the kubelet mounts API data
//!   read-only);
//! - a single file by `subPath`: the kubelet resolves the path inside the
//!   volume (symlinks included) and bind-mounts the one file it reaches;
//!   read-only for a ConfigMap key, writable for an emptyDir's file;
//! - a hostPath directory: a guest directory, writable;
//! - the kubelet's own `/etc/hosts` (`etc-hosts`: the node's hosts file
//!   for a host-network pod) and `/dev/termination-log`
//!   (`containers/<name>/<id>`).
//!
//! The kubelet mounts ConfigMap volumes on a tmpfs of their own; here they
//! are directories of the guest's root tmpfs (the container sees a bind
//! mount either way).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::cri::{self, Cri, Pod};
use crate::image;

/// Where the kubelet keeps pods.
pub const KUBELET_PODS: &str = "/var/lib/kubelet/pods";
/// Where hostPath volumes live on the guest.
pub const HOST_PATH_ROOT: &str = "/var/lib/d4c-vmtest/host-paths";
/// The in-container binary on the guest (`d4c-vmtest-agent`).
pub const AGENT_BINARY: &str = "/d4c-vmtest-agent";
/// The sandbox image containerd's `sandbox_image` names (vmtest/init).
pub const PAUSE_IMAGE: &str = "localhost/d4c-vmtest/pause:1";
/// How long `ctr images import` may take.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// The kubelet's directories, under a root (`/var/lib/kubelet/pods` in the
/// guest; a temporary directory in tests).
#[derive(Debug, Clone)]
pub struct KubeletDirs {
    /// The pods' directory.
    pub pods: PathBuf,
}

impl KubeletDirs {
    /// The guest's.
    pub fn guest() -> KubeletDirs {
        KubeletDirs { pods: PathBuf::from(KUBELET_PODS) }
    }

    /// A pod's directory.
    pub fn pod(&self, uid: &str) -> PathBuf {
        self.pods.join(uid)
    }

    /// An emptyDir volume's directory.
    pub fn empty_dir(&self, uid: &str, name: &str) -> PathBuf {
        self.pod(uid).join("volumes/kubernetes.io~empty-dir").join(name)
    }

    /// A ConfigMap volume's directory.
    pub fn config_map(&self, uid: &str, name: &str) -> PathBuf {
        self.pod(uid).join("volumes/kubernetes.io~configmap").join(name)
    }

    /// The pod's hosts file (`etc-hosts`).
    pub fn etc_hosts(&self, uid: &str) -> PathBuf {
        self.pod(uid).join("etc-hosts")
    }

    /// A container's termination log file.
    pub fn termination_log(&self, uid: &str, container: &str, token: &str) -> PathBuf {
        self.pod(uid).join("containers").join(container).join(token)
    }
}

/// Makes `dir` (and its parents) with `mode` on `dir` itself.
pub fn make_dir(dir: &Path, mode: u32) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {mode:o} {}: {e}", dir.display()))
}

/// Writes `data` at `path` with `mode`, making its parents.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    fs::write(path, data).map_err(|e| format!("writing {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {mode:o} {}: {e}", path.display()))
}

/// One key of a ConfigMap: its path in the volume (may have `/`), bytes,
/// mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Its path relative to the volume.
    pub path: String,
    /// Its content.
    pub data: Vec<u8>,
    /// Its mode (`defaultMode` or the item's `mode`).
    pub mode: u32,
}

/// Writes a ConfigMap volume at `dir` in the atomic writer's layout: the
/// keys in `..<timestamp>/`, `..data -> ..<timestamp>`, and for each
/// top-level name `name -> ..data/name`. Returns the timestamped
/// directory's name.
pub fn write_config_map(dir: &Path, keys: &[Key], timestamp: &str) -> Result<String, String> {
    let stamped = format!("..{timestamp}");
    make_dir(dir, 0o777)?;
    let data_dir = dir.join(&stamped);
    make_dir(&data_dir, 0o755)?;
    let mut top = std::collections::BTreeSet::new();
    for key in keys {
        let parts: Vec<&str> = key.path.split('/').filter(|c| !c.is_empty()).collect();
        if parts.is_empty() || parts.iter().any(|c| *c == "." || *c == ".." || c.starts_with("..")) {
            return Err(format!("ConfigMap key path `{}` is not allowed", key.path));
        }
        write_file(&data_dir.join(parts.join("/")), &key.data, key.mode)?;
        top.extend(parts.first().map(|p| p.to_string()));
    }
    let link = |target: &str, at: &Path| {
        std::os::unix::fs::symlink(target, at).map_err(|e| format!("symlink {} -> {target}: {e}", at.display()))
    };
    link(&stamped, &dir.join("..data"))?;
    for name in top {
        link(&format!("..data/{name}"), &dir.join(&name))?;
    }
    Ok(stamped)
}

/// A time stamp as the atomic writer names its directories
/// (`2026_12_07_03_11_28.123456789`), from the guest's clock.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
    // `2026-12-07T03:11:28.123Z`: the date and time, in the writer's form.
    let rfc3339 = d4c_runtime::ecs::format_unix_ns(ns);
    let seconds: String = rfc3339.chars().take(19).map(|c| if c.is_ascii_digit() { c } else { '_' }).collect();
    format!("{seconds}.{:09}", now.subsec_nanos())
}

/// A pod that has a sandbox.
#[derive(Debug)]
struct PodState {
    sandbox_id: String,
    /// Its containers that have not been removed.
    containers: usize,
}

/// The node: the CRI connection and the pods.
#[derive(Debug)]
pub struct Node {
    /// The CRI client.
    pub cri: Cri,
    pods: HashMap<String, PodState>,
    /// Seconds spent in RunPodSandbox and in Create+StartContainer.
    pub timings: Timings,
}

/// What starting pods and containers took (guest seconds).
#[derive(Debug, Default, Clone)]
pub struct Timings {
    /// RunPodSandbox calls and their total time.
    pub sandboxes: (u32, f64),
    /// Image builds and imports, and their total time.
    pub images: (u32, f64),
    /// CreateContainer + StartContainer calls and their total time.
    pub containers: (u32, f64),
}

impl Timings {
    /// `sandbox=N×Ss image=... container=...` averages, for summaries.
    pub fn summary(&self) -> String {
        let avg = |(n, s): (u32, f64)| if n == 0 { 0.0 } else { s / f64::from(n) };
        format!(
            "pod-sandbox-s={:.2} image-s={:.2} container-s={:.2} (averages of {}, {}, {})",
            avg(self.sandboxes),
            avg(self.images),
            avg(self.containers),
            self.sandboxes.0,
            self.images.0,
            self.containers.0
        )
    }
}

static NODE: OnceLock<Mutex<Option<Node>>> = OnceLock::new();

/// The node, connected on first use (containerd must be running: vmtest's
/// init starts it), with the pause image imported.
pub fn node() -> Result<MutexGuard<'static, Option<Node>>, String> {
    let mut guard =
        NODE.get_or_init(|| Mutex::new(None)).lock().map_err(|_| "the node's lock is poisoned".to_string())?;
    if guard.is_none() {
        let mut cri = Cri::connect(Path::new(cri::SOCKET))?;
        if cri.image_id(PAUSE_IMAGE)?.is_none() {
            let agent = fs::read(AGENT_BINARY).map_err(|e| format!("reading {AGENT_BINARY}: {e}"))?;
            let spec = image::ImageSpec {
                reference: PAUSE_IMAGE,
                entrypoint: vec!["/pause".into(), "pause".into()],
                executable: &agent,
                entries: vec![image::Entry::Executable { path: "/pause".into(), mode: 0o755 }],
            };
            import(&image::build(&spec)?, Path::new("/tmp"))?;
        }
        *guard = Some(Node { cri, pods: HashMap::new(), timings: Timings::default() });
    }
    Ok(guard)
}

/// The node's timings so far.
pub fn timings() -> Timings {
    NODE.get().and_then(|m| m.lock().ok()).and_then(|n| n.as_ref().map(|n| n.timings.clone())).unwrap_or_default()
}

/// Imports `archive` into containerd's `k8s.io` namespace with `ctr`,
/// unpacked for the overlayfs snapshotter, through a file in `scratch`.
pub fn import(archive: &image::Archive, scratch: &Path) -> Result<(), String> {
    let file = scratch.join(format!("image-{}.tar", archive.id.trim_start_matches("sha256:")));
    fs::create_dir_all(scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
    fs::write(&file, &archive.bytes).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let result = run_bounded(
        Command::new("ctr")
            .args(["--address", cri::SOCKET, "-n", "k8s.io", "images", "import", "--snapshotter", "overlayfs"])
            .arg(&file),
        IMPORT_TIMEOUT,
    );
    let _ = fs::remove_file(&file);
    result.map_err(|e| format!("importing image `{}`: {e}", archive.name))
}

/// Runs `command` (output captured), waiting at most `timeout`.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> Result<(), String> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {shown}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown} took over {}s; killed", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {shown}: {e}")),
        }
    }
    let output = child.wait_with_output().map_err(|e| format!("{shown}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&output.stderr).trim().to_string();
        Err(format!("{shown} ended with {}: {text}", output.status))
    }
}

impl Node {
    /// The sandbox of `pod`: the running one of its UID, or a new one
    /// (with the kubelet's pod directory, hosts file and log directory).
    pub fn sandbox(&mut self, pod: &Pod) -> Result<String, String> {
        if let Some(state) = self.pods.get_mut(&pod.uid) {
            state.containers += 1;
            return Ok(state.sandbox_id.clone());
        }
        let dirs = KubeletDirs::guest();
        make_dir(&dirs.pod(&pod.uid), 0o750)?;
        let hosts = fs::read("/etc/hosts").unwrap_or_default();
        let mut etc_hosts = b"# Kubernetes-managed hosts file (host network).\n".to_vec();
        etc_hosts.extend_from_slice(&hosts);
        write_file(&dirs.etc_hosts(&pod.uid), &etc_hosts, 0o644)?;
        make_dir(&pod.log_directory(), 0o755)?;
        let started = Instant::now();
        let sandbox_id = self.cri.run_pod_sandbox(pod)?;
        self.timings.sandboxes.0 += 1;
        self.timings.sandboxes.1 += started.elapsed().as_secs_f64();
        self.pods.insert(pod.uid.clone(), PodState { sandbox_id: sandbox_id.clone(), containers: 1 });
        Ok(sandbox_id)
    }

    /// A container of `pod` is gone (or never came): the pod's sandbox
    /// goes with its last one, and the kubelet's pod directory and pod
    /// cgroup with it. Errors name what could not be removed.
    pub fn release(&mut self, pod: &Pod) -> Result<(), String> {
        let Some(state) = self.pods.get_mut(&pod.uid) else { return Ok(()) };
        state.containers = state.containers.saturating_sub(1);
        if state.containers > 0 {
            return Ok(());
        }
        let sandbox_id = state.sandbox_id.clone();
        self.pods.remove(&pod.uid);
        let mut errors = Vec::new();
        if let Err(e) = self.cri.stop_pod_sandbox(&sandbox_id) {
            errors.push(e);
        }
        if let Err(e) = self.cri.remove_pod_sandbox(&sandbox_id) {
            errors.push(e);
        }
        let sandbox_cgroup = PathBuf::from(crate::bundle::CGROUP_ROOT)
            .join(pod.cgroup_parent().trim_start_matches('/'))
            .join(&sandbox_id);
        let pod_cgroup = sandbox_cgroup.parent().map(Path::to_path_buf).unwrap_or_default();
        if sandbox_cgroup.exists() {
            errors.push(format!("the sandbox's cgroup {} is still there", sandbox_cgroup.display()));
        }
        // The kubelet removes the pod's cgroup once the pod is gone.
        if pod_cgroup.exists() {
            if let Err(e) = fs::remove_dir(&pod_cgroup) {
                errors.push(format!("the pod's cgroup {} cannot be removed: {e}", pod_cgroup.display()));
            }
        }
        let dir = KubeletDirs::guest().pod(&pod.uid);
        if let Err(e) = fs::remove_dir_all(&dir) {
            errors.push(format!("removing {}: {e}", dir.display()));
        }
        let _ = fs::remove_dir_all(pod.log_directory());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("pod `{}/{}`: {}", pod.namespace, pod.name, errors.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> Result<PathBuf, String> {
        let dir = std::env::temp_dir().join(format!("d4c-vmtest-node-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(dir)
    }

    #[test]
    fn volumes_are_where_the_kubelet_puts_them() {
        let dirs = KubeletDirs::guest();
        assert_eq!(
            dirs.empty_dir("u1", "data"),
            PathBuf::from("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/data")
        );
        assert_eq!(
            dirs.config_map("u1", "conf"),
            PathBuf::from("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/conf")
        );
        assert_eq!(dirs.etc_hosts("u1"), PathBuf::from("/var/lib/kubelet/pods/u1/etc-hosts"));
    }

    #[test]
    fn a_config_map_has_the_atomic_writers_layout() -> Result<(), String> {
        let dir = scratch("cm")?.join("conf");
        let keys = vec![
            Key { path: "app.yaml".into(), data: b"a: 1\n".to_vec(), mode: 0o644 },
            Key { path: "sub/run.sh".into(), data: b"#!/bin/sh\n".to_vec(), mode: 0o755 },
        ];
        let stamped = write_config_map(&dir, &keys, "2026_12_07_03_11_28.000000001")?;
        assert_eq!(stamped, "..2026_12_07_03_11_28.000000001");
        let link = |p: &str| fs::read_link(dir.join(p)).map_err(|e| format!("{p}: {e}"));
        assert_eq!(link("..data")?, PathBuf::from(&stamped));
        assert_eq!(link("app.yaml")?, PathBuf::from("..data/app.yaml"));
        assert_eq!(link("sub")?, PathBuf::from("..data/sub"));
        // Through the links, the real files with their modes.
        let real = fs::canonicalize(dir.join("sub/run.sh")).map_err(|e| e.to_string())?;
        assert_eq!(real, fs::canonicalize(&dir).map_err(|e| e.to_string())?.join(&stamped).join("sub/run.sh"));
        let mode = fs::metadata(&real).map_err(|e| e.to_string())?.permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        assert_eq!(fs::read(dir.join("app.yaml")).map_err(|e| e.to_string())?, b"a: 1\n");
        let bad = [Key { path: "../x".into(), data: vec![], mode: 0o644 }];
        assert!(write_config_map(&scratch("cm-bad")?.join("c"), &bad, "t").is_err());
        fs::remove_dir_all(dir.parent().unwrap_or(&dir)).map_err(|e| e.to_string())
    }

    #[test]
    fn timestamps_have_the_atomic_writers_shape() {
        let t = timestamp();
        let shape: String = t.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect();
        assert_eq!(shape, "9999_99_99_99_99_99.999999999", "{t}");
    }
}
