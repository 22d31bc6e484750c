//! `d4c-vmtest daemonset`: the image users deploy, run the way the
//! DaemonSet runs it.
//!
//! The image is `deploy/Containerfile` as CI builds it (`scripts/
//! build-image`: FROM scratch, the static `d4c-runtime`), exported as an
//! OCI archive that `scripts/vmtest` puts in the initramfs. The check
//! imports it into the guest's containerd under the reference the
//! manifest names, and runs it through the CRI as a kubelet runs the
//! DaemonSet's pod: the pod template of `deploy/kubernetes/base/
//! daemonset.yaml`, read at run time ([`crate::manifest`]: hostPID, the
//! container's whole `securityContext`, resources, args, env, the hostPath
//! mounts with their propagation, the policy and `runtime.toml` as a
//! projected ConfigMap volume in the kubelet's atomic-writer layout). The
//! ConfigMaps hold what `deploy/README.md` tells a user to put there: the
//! compiled `deploy/policies/drift-prevention.yaml`, and
//! `configmap.yaml`'s `runtime.toml` with an Elasticsearch URL (here the
//! guest's `_bulk` endpoint, [`BulkSink`]).
//!
//! Then it proves the daemon works there: `/healthz` and `/readyz` answer
//! 200 within the startup probe's budget; its start-up report says
//! ENFORCING and pinned; the process has exactly the manifest's
//! capabilities, uid 0, `no_new_privs`, the node's PID namespace, a
//! read-only root and a bpffs mount that receives the node's mounts; a
//! workload pod started after it is registered, drift in it is refused
//! with EPERM and its alert reaches the endpoint with the pod's metadata;
//! `d4c-runtime --uninstall` run in the pod (`kubectl exec`) and SIGTERM
//! (StopContainer with the grace period) end enforcement cleanly.
//!
//! The node is first made what `deploy/README.md` asks of one and systemd
//! makes of a node: tracefs at `/sys/kernel/tracing`, and bpffs and `/run`
//! shared mounts (a HostToContainer mount of a private one is refused by
//! containerd). Whatever happens, the pod is torn down and no pin is left
//! for the checks after this one.
//!
//! Out: a summary with the figures (image size and import time, pod start
//! to ready, the daemon's own start to enforcing, its memory against the
//! pod's limit), or the first failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bulk_sink::{BulkSink, Received};
use crate::bundle::{Actor, AgentOp, Container, ContainerSpec, BUNDLE_ROOT, CGROUP_ROOT};
use crate::cri::{self, Pod};
use crate::manifest::{self, PodTemplate, Volume};
use crate::node::{self, Key, KubeletDirs};

const WORKDIR: &str = "/tmp/d4c-vmtest-daemonset";
/// Where `scripts/vmtest` puts the manifests and the image.
const MANIFESTS: &str = "/deploy/kubernetes/base";
const IMAGE_ARCHIVE: &str = "/images/d4c-runtime.oci.tar";
const IMAGE_RECORD: &str = "/images/d4c-runtime.json";
/// The policy `deploy/README.md` compiles into the ConfigMap `d4c-policy`.
const POLICY: &str = "/deploy/policies/drift-prevention.yaml";
const POLICY_CONFIG_MAP: &str = "d4c-policy";
/// The guest's own copy of the binary, for the last-resort uninstall.
const GUEST_RUNTIME: &str = "/d4c-runtime";
/// The node's name (vmtest/init sets the hostname), as `spec.nodeName`.
const NODE_NAME: &str = "vmtest";
/// The pod's name and UID, as the DaemonSet controller would make them.
const POD_NAME_SUFFIX: &str = "vm4c2";
const POD_UID: &str = "0d4c2000-5a0e-4e57-8000-00000000d4c2";
/// The guest's Elasticsearch.
const SINK: &str = "127.0.0.1:9203";
/// The pins the daemon makes (its default `pin_dir`).
const PIN_DIR: &str = "/sys/fs/bpf/d4c";
/// How long a document may take from the syscall to the endpoint (TCG).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a new pod may take to be registered.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `ctr` may take.
const CTR_TIMEOUT: Duration = Duration::from_secs(120);
/// The capabilities the DaemonSet adds, as bits of `CapEff`.
const CAP_SYS_RESOURCE: u32 = 24;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The workload: a pod started after the daemon.
fn workload() -> ContainerSpec {
    ContainerSpec {
        name: "web".into(),
        pod_uid: "0d4c2001-5a0e-4e57-8000-00000000d4c3".into(),
        image: Some("docker.io/library/debian:12".into()),
        namespace: Some("shop".into()),
        pod: Some("web-3".into()),
        files: vec![("/usr/bin/tool".into(), 0o755)],
        ..ContainerSpec::default()
    }
}

/// Reads a manifest of `MANIFESTS` as JSON.
fn read_manifest(name: &str) -> Result<Value, String> {
    let path = Path::new(MANIFESTS).join(name);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    manifest::yaml_to_json(&path.display().to_string(), &text)
}

/// Runs `ctr` against the guest's containerd (namespace `k8s.io`).
fn ctr(args: &[&str]) -> Result<(), String> {
    let mut command = Command::new("ctr");
    command.args(["--address", cri::SOCKET, "-n", "k8s.io"]).args(args);
    node::run_bounded(&mut command, CTR_TIMEOUT)
}

/// The node as systemd leaves it and deploy/README.md requires: tracefs
/// mounted, bpffs and `/run` shared mounts; no pins left by an earlier
/// check.
/// Returns what it changed, for the summary.
fn prepare_node() -> Result<Vec<String>, String> {
    let mut changed = Vec::new();
    if !Path::new("/sys/kernel/tracing/events").is_dir() {
        let mut mount = Command::new("mount");
        mount.args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"]);
        node::run_bounded(&mut mount, Duration::from_secs(10)).map_err(|e| format!("mounting tracefs: {e}"))?;
        changed.push("tracefs-mounted".to_owned());
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    // Both are mounted into the pod HostToContainer: bpffs for the pins,
    // /run for containerd's bundles and the containers' root file systems.
    for (point, name) in [("/sys/fs/bpf", "bpffs"), ("/run", "run")] {
        let shared = mount_fields(&mountinfo, point).is_none_or(|(_, tags)| tags.contains("shared:"));
        if !shared {
            let mut mount = Command::new("mount");
            mount.args(["--make-shared", point]);
            node::run_bounded(&mut mount, Duration::from_secs(10))
                .map_err(|e| format!("making {point} a shared mount: {e}"))?;
            changed.push(format!("{name}-made-shared"));
        }
    }
    if Path::new(PIN_DIR).exists() {
        uninstall_on_guest()?;
        changed.push("stale-pins-removed".to_owned());
    }
    Ok(changed)
}

/// `d4c-runtime --uninstall` run on the guest (its own copy of the binary).
fn uninstall_on_guest() -> Result<(), String> {
    node::run_bounded(Command::new(GUEST_RUNTIME).arg("--uninstall"), Duration::from_secs(60))
        .map_err(|e| format!("{GUEST_RUNTIME} --uninstall: {e}"))
}

/// The mount at `point` in a mountinfo text: its options and its optional
/// fields (`shared:N`, `master:N`). The last one wins, as the kernel
/// resolves a path.
fn mount_fields(mountinfo: &str, point: &str) -> Option<(String, String)> {
    mountinfo.lines().rev().find_map(|line| {
        let (left, _) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        (fields.get(4) == Some(&point)).then(|| {
            let options = fields.get(5).copied().unwrap_or_default().to_owned();
            (options, fields.get(6..).unwrap_or_default().join(" "))
        })
    })
}

/// Imports the built image and tags it with the manifest's reference, as
/// pushing it to the registry the manifest names would. Returns the image
/// id and the seconds it took.
fn import_image(record: &Value, reference: &str) -> Result<(String, f64), String> {
    let built = record.get("reference").and_then(Value::as_str).ok_or("the image record has no `reference`")?;
    let id = record.get("id").and_then(Value::as_str).ok_or("the image record has no `id`")?;
    let base = built.rsplit_once(':').map_or(built, |(base, _)| base);
    let started = Instant::now();
    ctr(&["images", "import", "--base-name", base, "--snapshotter", "overlayfs", IMAGE_ARCHIVE])
        .map_err(|e| format!("importing {IMAGE_ARCHIVE}: {e}"))?;
    if built != reference {
        ctr(&["images", "tag", "--force", built, reference]).map_err(|e| format!("tagging {built}: {e}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut guard = node::node()?;
    let node = guard.as_mut().ok_or("no node")?;
    match node.cri.image_id(reference)? {
        Some(found) if found == id => Ok((found, seconds)),
        other => Err(format!("containerd has `{reference}` as {other:?}, not the built image {id}")),
    }
}

/// Compiles the deployed policy (`d4cc compile`, revision 1).
fn compile_policy() -> Result<Vec<u8>, String> {
    let text = fs::read(POLICY).map_err(|e| format!("{POLICY}: {e}"))?;
    let (_, lint) = d4cc::lint::lint_bytes(POLICY, text.clone());
    let checked = lint.checked.ok_or_else(|| format!("{POLICY} does not lint"))?;
    let options =
        d4cc::compile::CompileOptions { policy_name: "drift-prevention".into(), revision: 1, created_unix: None };
    d4cc::compile::compile(&text, &checked, &options).map_err(|e| format!("compiling {POLICY}: {e}"))
}

/// The node's memory in bytes (`MemTotal`), for the kubelet's
/// `oom_score_adj`.
fn node_memory() -> i64 {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|l| l.split_whitespace().next());
    kib.and_then(|k| k.parse::<i64>().ok()).unwrap_or(0) * 1024
}

/// `GET path` on the node's loopback at `port`: status and body.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nhost: d4c\r\nconnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    Ok((status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

/// A sample's value from `/metrics`, or why there is none.
fn read_metric(port: u16, prefix: &str) -> Result<f64, String> {
    let (status, body) = http_get(port, "/metrics")?;
    let line = body.lines().find(|l| l.starts_with(prefix)).ok_or_else(|| format!("HTTP {status}, no `{prefix}`"))?;
    line.rsplit(' ').next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("`{line}` has no number"))
}

/// A sample's value from `/metrics`.
fn metric(port: u16, prefix: &str) -> Option<f64> {
    read_metric(port, prefix).ok()
}

/// Waits up to `timeout` for the sample `prefix` to read `want`: one GET
/// of a daemon on a loaded TCG guest may time out (seen once on 6.12, the
/// first time `/metrics` was read) without anything being wrong.
fn wait_metric(port: u16, prefix: &str, want: f64, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let read = read_metric(port, prefix);
        if read.as_ref().is_ok_and(|v| *v == want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("/metrics: {prefix}is {read:?} after {timeout:?}, not {want}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The ConfigMaps' files: (ConfigMap, key) to content.
type ConfigMapFiles = std::collections::BTreeMap<(String, String), Vec<u8>>;

/// The daemon's pod, as the kubelet runs it; torn down on drop.
struct DaemonPod {
    template: PodTemplate,
    pod: Pod,
    sandbox_id: String,
    container_id: String,
    /// Directories made for `DirectoryOrCreate` hostPaths.
    created: Vec<PathBuf>,
    stopped: bool,
}

impl DaemonPod {
    /// Lays out the pod's volumes (ConfigMap files in `config_maps`: name
    /// to key to bytes), runs its sandbox, creates and starts its
    /// container. Returns the pod and the seconds from RunPodSandbox to
    /// StartContainer's answer.
    fn start(template: &PodTemplate, image_id: &str, config_maps: &ConfigMapFiles) -> Result<(DaemonPod, f64), String> {
        let name = format!("{}-{POD_NAME_SUFFIX}", template.name);
        let pod = template.pod(&name, POD_UID);
        let mut daemon = DaemonPod {
            template: template.clone(),
            pod: pod.clone(),
            sandbox_id: String::new(),
            container_id: String::new(),
            created: Vec::new(),
            stopped: false,
        };
        let dirs = KubeletDirs::guest();
        node::make_dir(&dirs.pod(POD_UID), 0o750)?;
        let mut mounts = Vec::new();
        for mount in &template.container.mounts {
            let volume = template.volumes.iter().find(|(n, _)| n == &mount.name).map(|(_, v)| v);
            let host = match volume {
                Some(Volume::HostPath { path, kind }) => {
                    let host = PathBuf::from(path);
                    match kind.as_str() {
                        "Directory" if !host.is_dir() => {
                            return Err(format!("hostPath `{path}` (type Directory) is not a directory on the node"))
                        }
                        "DirectoryOrCreate" if !host.exists() => {
                            node::make_dir(&host, 0o755)?;
                            daemon.created.push(host.clone());
                        }
                        "Directory" | "DirectoryOrCreate" | "" => {}
                        other => return Err(format!("hostPath `{path}`: type `{other}` is not run by this check")),
                    }
                    host
                }
                Some(Volume::Projected(items)) => {
                    let mut keys = Vec::new();
                    for item in items {
                        let data = config_maps
                            .get(&(item.config_map.clone(), item.key.clone()))
                            .cloned()
                            .ok_or_else(|| format!("ConfigMap `{}` has no key `{}`", item.config_map, item.key))?;
                        keys.push(Key { path: item.path.clone(), data, mode: 0o644 });
                    }
                    let dir = dirs.pod(POD_UID).join("volumes/kubernetes.io~projected").join(&mount.name);
                    node::write_config_map(&dir, &keys, &node::timestamp())?;
                    dir
                }
                None => return Err(format!("volumeMount `{}` names no volume", mount.name)),
            };
            let mut cri_mount = cri::mount(&mount.path, &host, mount.read_only);
            cri_mount.propagation = manifest::propagation(mount.propagation.as_deref())? as i32;
            mounts.push(cri_mount);
        }
        // The kubelet's own: the pod's hosts file and the termination log.
        let hosts = fs::read("/etc/hosts").unwrap_or_default();
        node::write_file(&dirs.etc_hosts(POD_UID), &hosts, 0o644)?;
        mounts.push(cri::mount("/etc/hosts", &dirs.etc_hosts(POD_UID), false));
        let termination = dirs.termination_log(POD_UID, &template.container.name, "d4c0");
        node::write_file(&termination, b"", 0o666)?;
        mounts.push(cri::mount("/dev/termination-log", &termination, false));
        node::make_dir(&pod.log_directory(), 0o755)?;

        let env = template.env(NODE_NAME, &pod)?;
        let config = manifest::container_config(template, &pod, image_id, mounts, env, node_memory())?;
        let sandbox = manifest::sandbox_config(template, &name, POD_UID);
        let mut guard = node::node()?;
        let node = guard.as_mut().ok_or("no node")?;
        let started = Instant::now();
        daemon.sandbox_id = node.cri.run_pod_sandbox_with(sandbox.clone())?;
        daemon.container_id = node.cri.create_container_with(&daemon.sandbox_id, config, sandbox)?;
        node.cri.start_container(&daemon.container_id, &template.container.name)?;
        Ok((daemon, started.elapsed().as_secs_f64()))
    }

    /// The container's CRI log, the kubelet's prefixes removed.
    fn log(&self) -> String {
        let path = self.pod.log_directory().join(format!("{}/0.log", self.template.container.name));
        let text = fs::read_to_string(path).unwrap_or_default();
        text.lines().map(|l| l.splitn(4, ' ').nth(3).unwrap_or(l)).collect::<Vec<_>>().join("\n")
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines.get(lines.len().saturating_sub(15)..).unwrap_or_default().join(" | ")
    }

    /// The container's state and exit code, and its pid on the node.
    fn status(&self) -> Result<(i32, i32, u32), String> {
        let mut guard = node::node()?;
        let node = guard.as_mut().ok_or("no node")?;
        let (status, info) = node.cri.container_status(&self.container_id, &self.template.container.name)?;
        let pid = info.get("pid").and_then(Value::as_u64).and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
        Ok((status.state, status.exit_code, pid))
    }

    /// Waits until `GET path` answers 200, or the container ends, or
    /// `budget` passes.
    fn wait_http(&self, port: u16, path: &str, budget: Duration) -> Result<(), String> {
        let deadline = Instant::now() + budget;
        loop {
            let answer = http_get(port, path);
            if answer.as_ref().is_ok_and(|(status, _)| *status == 200) {
                return Ok(());
            }
            let (state, code, _) = self.status()?;
            if state == k8s_cri::v1::ContainerState::ContainerExited as i32 {
                return Err(format!(
                    "the daemon's container exited ({code}) before GET {path} answered 200: {}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "GET {path} did not answer 200 within the probe's {}s ({answer:?}): {}",
                    budget.as_secs(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kubectl exec POD -- d4c-runtime --uninstall`.
    fn exec_uninstall(&self) -> Result<(), String> {
        let command = ["/usr/local/bin/d4c-runtime", "--uninstall", "--config", "/etc/d4c/runtime.toml"];
        let mut guard = node::node()?;
        let node = guard.as_mut().ok_or("no node")?;
        let (code, out, err) = node.cri.exec_sync(&self.container_id, &command, 60)?;
        if code == 0 {
            Ok(())
        } else {
            Err(format!("`{}` in the pod exited {code}: {out} {err}", command.join(" ")))
        }
    }

    /// StopContainer with the grace period (SIGTERM, then SIGKILL): the
    /// exit code.
    fn stop_daemon(&self) -> Result<i32, String> {
        {
            let mut guard = node::node()?;
            let node = guard.as_mut().ok_or("no node")?;
            node.cri.stop_container(&self.container_id, &self.template.container.name, self.template.grace_period_s)?;
        }
        Ok(self.status()?.1)
    }

    /// Removes the container, the sandbox, the pod's directories and the
    /// hostPath directories made for it; then, if pins are left (the
    /// daemon was not uninstalled), removes them.
    fn teardown(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut errors = Vec::new();
        match node::node() {
            Ok(mut guard) => {
                if let Some(node) = guard.as_mut() {
                    let name = &self.template.container.name;
                    if !self.container_id.is_empty() {
                        let grace = self.template.grace_period_s;
                        errors.extend(node.cri.stop_container(&self.container_id, name, grace).err());
                        errors.extend(node.cri.remove_container(&self.container_id, name).err());
                    }
                    if !self.sandbox_id.is_empty() {
                        errors.extend(node.cri.stop_pod_sandbox(&self.sandbox_id).err());
                        errors.extend(node.cri.remove_pod_sandbox(&self.sandbox_id).err());
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        let pod_cgroup = PathBuf::from(CGROUP_ROOT).join(self.template.cgroup_parent(POD_UID).trim_start_matches('/'));
        if pod_cgroup.exists() {
            errors.extend(fs::remove_dir(&pod_cgroup).err().map(|e| format!("{}: {e}", pod_cgroup.display())));
        }
        for dir in [KubeletDirs::guest().pod(POD_UID), self.pod.log_directory()].iter().chain(&self.created) {
            errors.extend(fs::remove_dir_all(dir).err().map(|e| format!("removing {}: {e}", dir.display())));
        }
        if Path::new(PIN_DIR).exists() {
            errors.extend(uninstall_on_guest().err());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("tearing the daemon's pod down: {}", errors.join("; ")))
        }
    }
}

impl Drop for DaemonPod {
    /// Best effort: `teardown` reports what this ignores.
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// The capabilities in a `/proc/<pid>/status` field (`CapEff`, `CapBnd`).
fn caps(status: &str, field: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix(&format!("{field}:")))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// A `/proc/<pid>/status` field's first word.
fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(&format!("{field}:")))?.split_whitespace().next()
}

/// Checks the daemon's process as the kernel sees it: what the
/// securityContext and hostPID must have given it.
fn check_process(pid: u32) -> Result<(), String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let want = (1u64 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_SYS_RESOURCE);
    let mut wrong = Vec::new();
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        if caps(&status, field) != Some(want) {
            wrong.push(format!("{field} {:?}, expected {want:#x} (BPF, PERFMON, SYS_RESOURCE)", caps(&status, field)));
        }
    }
    for (field, want) in [("Uid", "0"), ("Gid", "0"), ("NoNewPrivs", "1"), ("Seccomp", "0")] {
        if status_field(&status, field) != Some(want) {
            wrong.push(format!("{field} {:?}, expected {want}", status_field(&status, field)));
        }
    }
    let ns = |p: &str| fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    if ns(&pid.to_string()).is_none() || ns(&pid.to_string()) != ns("1") {
        wrong.push("not in the node's PID namespace (hostPID)".into());
    }
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).map_err(|e| format!("mountinfo: {e}"))?;
    match mount_fields(&mountinfo, "/") {
        Some((options, _)) if options.split(',').any(|o| o == "ro") => {}
        other => wrong.push(format!("the root is not read-only: {other:?}")),
    }
    match mount_fields(&mountinfo, "/sys/fs/bpf") {
        Some((options, tags)) if options.starts_with("rw") && tags.contains("master:") => {}
        other => wrong.push(format!("/sys/fs/bpf is not a writable mount receiving the node's (rslave): {other:?}")),
    }
    for point in
        ["/sys/kernel/security", "/sys/kernel/tracing", "/sys/fs/cgroup", BUNDLE_ROOT.trim_end_matches("/k8s.io")]
    {
        match mount_fields(&mountinfo, point) {
            Some((options, _)) if options.starts_with("ro") => {}
            other => wrong.push(format!("{point} is not mounted read-only: {other:?}")),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("the daemon's process (pid {pid}): {}", wrong.join("; ")))
    }
}

/// The memory of the daemon's container's cgroup: `memory.peak` (or
/// `memory.current`) and `memory.max`, in bytes.
fn container_memory(container_id: &str) -> Option<(u64, String)> {
    let config = fs::read_to_string(Path::new(BUNDLE_ROOT).join(container_id).join("config.json")).ok()?;
    let config: Value = serde_json::from_str(&config).ok()?;
    let cgroup =
        PathBuf::from(CGROUP_ROOT).join(config.pointer("/linux/cgroupsPath")?.as_str()?.trim_start_matches('/'));
    let read = |name: &str| fs::read_to_string(cgroup.join(name)).ok().map(|s| s.trim().to_owned());
    let used = read("memory.peak").or_else(|| read("memory.current"))?.parse().ok()?;
    Some((used, read("memory.max")?))
}

fn check_fields(doc: &Received, fields: &[(&str, Value)]) -> Result<(), String> {
    let wrong: Vec<String> = fields
        .iter()
        .filter_map(|(pointer, want)| {
            let got = doc.source.pointer(pointer).cloned().unwrap_or(Value::Null);
            (&got != want).then(|| format!("{pointer} = {got}, expected {want}"))
        })
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("alert {} in {}: {}", doc.id, doc.index, wrong.join("; ")))
    }
}

/// Stages an actor in `container` and performs `op`; its errno.
fn act(container: &mut Container, op: AgentOp) -> Result<i32, String> {
    let staged = container.stage(&Actor { exe: "/usr/bin/tool".into(), name: None, interactive: false, uid: 0 })?;
    Ok(container.perform(staged, &op)?.errno)
}

/// Runs the check; the summary on success.
pub fn run() -> Result<String, String> {
    let workdir = PathBuf::from(WORKDIR);
    let _ = fs::remove_dir_all(&workdir);
    fs::create_dir_all(&workdir).map_err(|e| format!("{WORKDIR}: {e}"))?;
    let prepared = prepare_node()?;

    // 1. The manifests, the image, the ConfigMaps.
    let template = manifest::pod_template(&read_manifest("daemonset.yaml")?)?;
    let (config_name, config_data) = manifest::config_map_data(&read_manifest("configmap.yaml")?)?;
    let record: Value =
        serde_json::from_str(&fs::read_to_string(IMAGE_RECORD).map_err(|e| format!("{IMAGE_RECORD}: {e}"))?)
            .map_err(|e| format!("{IMAGE_RECORD}: {e}"))?;
    let (image_id, import_s) = import_image(&record, &template.container.image)?;
    // runtime.toml as deploy/README.md has a user edit it: an Elasticsearch
    // URL in [delivery.sink.elasticsearch].
    let mut runtime_toml = config_data.get("runtime.toml").cloned().ok_or("configmap.yaml has no runtime.toml")?;
    runtime_toml.push_str(&format!("\n[delivery.sink.elasticsearch]\nurls = [\"http://{SINK}\"]\n"));
    let toml_path = workdir.join("runtime.toml");
    fs::write(&toml_path, &runtime_toml).map_err(|e| format!("{}: {e}", toml_path.display()))?;
    // The daemon's view of it, through its own reader: the port and the
    // data stream namespace to expect.
    let config = d4c_runtime::config::read(Some(&toml_path), Vec::new(), &[])?;
    let port = config.listen.port();
    let config_maps = ConfigMapFiles::from([
        ((POLICY_CONFIG_MAP.to_owned(), "policy.d4c".to_owned()), compile_policy()?),
        ((config_name, "runtime.toml".to_owned()), runtime_toml.into_bytes()),
    ]);
    let sink = BulkSink::start(SINK)?;

    // 2. The pod, as the kubelet runs it; ready within the startup probe's
    // budget.
    let pod_started = Instant::now();
    let (mut daemon, cri_s) = DaemonPod::start(&template, &image_id, &config_maps)?;
    let probe = |p: &Option<manifest::HttpProbe>, what: &str| p.clone().ok_or(format!("the container has no {what}"));
    let startup = probe(&template.container.startup, "startupProbe")?;
    let readiness = probe(&template.container.readiness, "readinessProbe")?;
    if (startup.port, readiness.port) != (port, port) {
        return Err(format!("the probes ask port {}/{}, the daemon listens on {port}", startup.port, readiness.port));
    }
    let budget = Duration::from_secs(startup.budget_s());
    daemon.wait_http(port, &startup.path, budget)?;
    daemon.wait_http(port, &readiness.path, budget)?;
    let ready_ms = pod_started.elapsed().as_millis();
    let log = daemon.log();
    let report_line = |key: &str| log.lines().find(|l| l.trim_start().starts_with(key)).map(str::trim);
    let mode = report_line("mode").unwrap_or_default();
    if !mode.contains("ENFORCING") {
        return Err(format!("the daemon's start-up report does not say ENFORCING (`{mode}`): {}", daemon.log_tail()));
    }
    if !report_line("pinned").unwrap_or_default().contains("yes") {
        return Err(format!("the daemon's probes are not pinned: {}", daemon.log_tail()));
    }
    let start_ms: f64 = report_line("started in")
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no `started in` line in the daemon's log: {}", daemon.log_tail()))?;
    // The hooks the daemon runs without, for the summary: an optional LSM
    // hook the kernel lacks, a tracepoint it refuses the pod (Debian's
    // perf_event_paranoid 3).
    let probes = report_line("probes").unwrap_or_default();
    let left_out: Vec<&str> = ["not attached: ", "not in this kernel: "]
        .iter()
        .flat_map(|marker| probes.split(marker).skip(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    wait_metric(port, "d4c_enforcing ", 1.0, Duration::from_secs(30))?;
    let (_, _, pid) = daemon.status()?;
    check_process(pid)?;

    // 3. A workload pod started after it is registered; drift is refused;
    // the alert arrives with the pod's metadata.
    let before = metric(port, "d4c_containers ").unwrap_or(0.0);
    let mut web = Container::start(&workload(), &workdir.join("containers"))
        .map_err(|e| format!("the workload pod did not start under the daemon: {e}"))?;
    let deadline = Instant::now() + REGISTRATION_TIMEOUT;
    while metric(port, "d4c_containers ").unwrap_or(0.0) < before + 2.0 {
        if Instant::now() > deadline {
            return Err(format!(
                "the workload's container and sandbox were not registered within {REGISTRATION_TIMEOUT:?} \
                 ({before} containers before, {:?} now): {}",
                metric(port, "d4c_containers "),
                daemon.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let errno = act(&mut web, AgentOp::Create { path: "/usr/bin/dropper".into(), mode: 0o755 })?;
    if errno != libc::EPERM {
        return Err(format!("creating /usr/bin/dropper 0755 in the workload: errno {errno}, expected EPERM"));
    }
    let is_alert =
        |d: &Received| d.index.contains("alerts") && d.source.pointer("/file/path") == Some(&json!("/usr/bin/dropper"));
    let documents = sink.wait_for(DELIVERY_TIMEOUT, |docs| docs.iter().any(is_alert)).map_err(|docs| {
        format!("no alert for /usr/bin/dropper among {} documents within {DELIVERY_TIMEOUT:?}", docs.len())
    })?;
    let alert = documents.iter().find(|d| is_alert(d)).ok_or("no alert")?;
    println!("D4C-VMTEST-DAEMONSET-ALERT: {} {}", alert.index, alert.source);
    if alert.index != format!("logs-cloud_defend.alerts-{}", config.namespace) {
        return Err(format!("the alert went to {}", alert.index));
    }
    check_fields(
        alert,
        &[
            ("/event/type", json!(["denied"])),
            ("/event/action", json!("creation")),
            ("/cloud_defend/blocked", json!(true)),
            ("/cloud_defend/matched_selectors", json!(["executableDrift"])),
            ("/cloud_defend/package_policy_id", json!("drift-prevention")),
            ("/container/id", json!(web.id())),
            ("/container/name", json!("web")),
            ("/orchestrator/namespace", json!("shop")),
            ("/orchestrator/resource/name", json!("web-3")),
            // NODE_NAME, from the downward API.
            ("/host/name", json!(NODE_NAME)),
            ("/process/executable", json!("/usr/bin/tool")),
        ],
    )?;
    let memory = container_memory(&daemon.container_id);

    // 4. `kubectl exec ... --uninstall`, then SIGTERM within the grace
    // period: a clean exit, and nothing enforces any more.
    daemon.exec_uninstall()?;
    let code = daemon.stop_daemon()?;
    if code != 0 {
        return Err(format!("the daemon exited {code} on SIGTERM: {}", daemon.log_tail()));
    }
    let errno = act(&mut web, AgentOp::Create { path: "/usr/bin/dropper2".into(), mode: 0o755 })?;
    if errno != 0 {
        return Err(format!("drift after uninstalling and stopping the daemon: errno {errno}, expected 0"));
    }
    web.stop()?;
    daemon.teardown()?;
    let bad = sink.bad_requests.lock().map(|b| b.clone()).unwrap_or_default();
    if !bad.is_empty() {
        return Err(format!("the endpoint could not read requests: {bad:?}"));
    }
    let (peak, max) = memory.map_or((0, "?".to_owned()), |(p, m)| (p / 1024, m));
    let listed = |items: Vec<&str>| if items.is_empty() { "none".to_owned() } else { items.join(",") };
    let prepared = listed(prepared.iter().map(String::as_str).collect());
    let left_out = listed(left_out);
    Ok(format!(
        "image={} id={} layer-bytes={} import-s={import_s:.1} pod-to-ready-ms={ready_ms} cri-start-s={cri_s:.1} \
         start-to-enforcing-ms={start_ms:.0} caps=BPF,PERFMON,SYS_RESOURCE memory-peak-kib={peak} memory-max={max} \
         documents={} node-prepared={prepared} hooks-left-out={left_out}",
        template.container.image,
        cri::short(image_id.trim_start_matches("sha256:")),
        record.get("layer_bytes").and_then(Value::as_u64).unwrap_or(0),
        sink.documents().len(),
    ))
}
