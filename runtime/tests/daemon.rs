//! The daemon on this host's kernel: real probes (tracepoints; this kernel
//! refuses LSM programs, so the daemon runs in audit mode and decides
//! forks and execs itself), a real cgroup laid out as a kubelet lays it
//! out, a bundle with CRI annotations, and real processes in it.
//!
//! Checks: the container is found and registered from its bundle; a
//! container without a bundle stays pending until its bundle appears; its
//! processes' execs become ECS documents with the container's and pod's
//! fields, the new program's executable as the kernel resolved it and the
//! arguments it copied, and the matched selectors; their ends follow and
//! agree with them; every document keeps the integration's field types
//! (`fields.txt`); a new artifact is switched to without a gap and a bad
//! one is refused. Needs root and a writable cgroup hierarchy (as CI has).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use d4c_runtime::cgroup::KubepodsRoot;
use d4c_runtime::config::Config;
use d4c_runtime::daemon::Daemon;
use d4c_runtime::document::{Class, Document};
use serde_json::Value;

const POLICY: &str = "\
process:
  selectors:
    - name: prodExecs
      operation: [exec]
      kubernetesNamespace: [prod]
      containerImageName: [nginx]
    - name: anyTrue
      operation: [exec]
      processExecutable: [/usr/bin/true, /bin/true]
  responses:
    - match: [prodExecs]
      actions: [log]
    - match: [anyTrue]
      actions: [alert]
";

/// A cgroup made for the test and removed after it (its processes gone).
struct TestCgroup {
    top: PathBuf,
    leaf: PathBuf,
}

impl TestCgroup {
    fn new(mount: &Path, id: &str, pod_uid: &str) -> TestCgroup {
        let top = mount.join(format!("d4c-runtime-test-{}", std::process::id()));
        let leaf = top.join("kubepods/besteffort").join(format!("pod{pod_uid}")).join(id);
        std::fs::create_dir_all(&leaf).unwrap();
        TestCgroup { top, leaf }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Deepest first: rmdir of a cgroup needs it empty of children.
        let mut dirs: Vec<PathBuf> =
            self.leaf.ancestors().take_while(|p| p.starts_with(&self.top)).map(Path::to_path_buf).collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Removes the test's pins however the test ends: pinned probes would
/// stay attached to this machine's kernel otherwise.
struct PinGuard(PathBuf);

impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = d4c_kernel_probes::probes::unpin_all(&self.0);
    }
}

fn memory_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    d4c_runtime::cgroup::detect_hierarchy(&mountinfo).id_mount().map(Path::to_path_buf)
}

/// Lints and compiles `policy` into `<dir>/<name>.d4c` with `revision`.
fn compile(dir: &Path, name: &str, revision: u64, policy: &str) -> PathBuf {
    let (_, lint) = d4cc::lint::lint_bytes(format!("{name}.yaml"), policy.as_bytes().to_vec());
    let checked = lint.checked.unwrap_or_else(|| panic!("the test policy does not lint: {:#?}", lint.diagnostics));
    let options = d4cc::compile::CompileOptions { policy_name: name.into(), revision, created_unix: None };
    let bytes = d4cc::compile::compile(policy.as_bytes(), &checked, &options).unwrap();
    let out = dir.join(format!("{name}.d4c"));
    // Written beside, then renamed: the way a ConfigMap update lands.
    let tmp = dir.join(format!("{name}.d4c.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// The root the test's container runs in: `/usr`, which on a merged-/usr
/// system holds `/bin/sh`, its tools and their libraries.
const CONTAINER_ROOT: &str = "/usr";

/// Runs `sh -c SCRIPT` as a container's program, started as a container
/// runtime starts one: a shell forked by this test (outside every
/// container) joins `cgroup`, enters the container's root
/// ([`CONTAINER_ROOT`]) and execs the program there. The probes take what
/// a task forked outside containers does before that exec as the runtime's
/// set-up, not the container's (counter `setup`).
fn run_in(cgroup: &Path, script: &str) {
    let quoted = format!("'{}'", script.replace('\'', "'\\''"));
    run_at_host_root(cgroup, &format!("exec chroot {CONTAINER_ROOT} /bin/sh -c {quoted}"));
}

/// Runs `sh -c SCRIPT` in `cgroup` without leaving the host's root: what a
/// container runtime's own set-up task does.
fn run_at_host_root(cgroup: &Path, script: &str) {
    let procs = cgroup.join("cgroup.procs");
    let status =
        Command::new("/bin/sh").arg("-c").arg(format!("echo $$ > {} && {script}", procs.display())).status().unwrap();
    assert!(status.success(), "{script}");
}

fn drain_until(daemon: &mut Daemon, want: impl Fn(&[Document]) -> bool) -> Vec<Document> {
    let mut documents = Vec::new();
    for _ in 0..200 {
        daemon.drain(&mut documents);
        if want(&documents) {
            return documents;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("the documents wanted never came; got {:#?}", parsed(&documents));
}

/// The documents, parsed; each must keep the integration's field types.
fn parsed(documents: &[Document]) -> Vec<Value> {
    let values: Vec<Value> = documents.iter().map(|d| serde_json::from_slice(&d.body).unwrap()).collect();
    for value in &values {
        let problems = d4c_runtime::fields::check(value);
        assert!(problems.is_empty(), "{problems:#?} in {value:#}");
    }
    values
}

#[test]
fn the_daemon_registers_containers_and_turns_their_processes_into_documents() {
    let Some(mount) = memory_mount() else {
        panic!("no cgroup hierarchy to make a container's cgroup in");
    };
    let dir = tempfile::tempdir().unwrap();
    let id = "d4c0".repeat(16);
    let pod_uid = "0d3c8a52-7f0b-4a1b-9f8e-2f4c9a1b2c3d";
    let cgroup = TestCgroup::new(&mount, &id, pod_uid);
    let artifact = compile(dir.path(), "test", 7, POLICY);
    let config = Config {
        artifact: Some(artifact.clone()),
        cgroupfs: Some(mount.clone()),
        bundle_patterns: vec![format!("{}/bundles/{{id}}/config.json", dir.path().display())],
        node_name: Some("node-under-test".into()),
        cluster_name: Some("test-cluster".into()),
        namespace: "testns".into(),
        pin_dir: PathBuf::from(format!("/sys/fs/bpf/d4c-runtime-test-{}", std::process::id())),
        state_dir: dir.path().join("state"),
        ..Config::default()
    };
    let pin_dir = config.pin_dir.clone();
    let _unpin = PinGuard(pin_dir.clone());
    let mut daemon = Daemon::start(config).unwrap();
    assert!(daemon.report("none").contains("revision 7"));
    let first_generation = daemon.pinned().expect("pinned").to_path_buf();

    // The new cgroup is seen by the watch, without waiting for a scan.
    assert!(daemon.control_plane().watching(), "the kubepods tree is not watched");
    let second = cgroup.leaf.parent().unwrap().join("e".repeat(64));
    std::fs::create_dir(&second).unwrap();
    assert!(daemon.scan_due(), "the watch did not see a new container cgroup");
    std::fs::remove_dir(&second).unwrap();
    // No bundle yet: the container is found but pending.
    daemon.scan();
    assert_eq!(daemon.containers().len(), 0);
    assert!(daemon.control_plane().pending() > 0, "the cgroup was not found");

    let bundle = dir.path().join("bundles").join(&id);
    std::fs::create_dir_all(&bundle).unwrap();
    let annotations = serde_json::json!({"annotations": {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "web",
        "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.25",
        "io.kubernetes.cri.sandbox-name": "web-7d9f",
        "io.kubernetes.cri.sandbox-namespace": "prod",
        "io.kubernetes.cri.sandbox-uid": pod_uid,
    }});
    std::fs::write(bundle.join("config.json"), annotations.to_string()).unwrap();
    daemon.scan();
    assert_eq!(daemon.containers().len(), 1, "the container was not registered from its bundle");
    assert!(daemon.counters().registration_window_ns.1 > 0);

    // Regression (issue 14, fault 2): a scan that cannot read the cgroup
    // tree (EMFILE; here ENOTDIR, roots that are files) keeps the registry
    // instead of deregistering every container.
    let roots = daemon.control_plane().roots().to_vec();
    let unreadable = roots.iter().map(|root| KubepodsRoot { path: artifact.clone(), id: root.id }).collect();
    daemon.set_kubepods_roots(unreadable);
    daemon.scan();
    assert_eq!(daemon.containers().len(), 1, "a failed scan deregistered the container");
    assert_eq!(daemon.counters().scan_failures, 1);
    daemon.set_kubepods_roots(roots);

    // A task forked on the host that joins the container's cgroup and execs
    // at the host's root sets the container up: nothing it does is the
    // container's (regression: runc init, exec'd on the host, lost its mark
    // at that exec, and drift prevention refused pods their start).
    run_at_host_root(&cgroup.leaf, "/bin/true set-up");
    run_in(&cgroup.leaf, "/bin/true 'first arg' x");
    let documents = drain_until(&mut daemon, |d| {
        parsed(d).iter().any(|v| v["event"]["action"] == "end") && d.iter().any(|d| d.class == Class::Alert)
    });
    let values = parsed(&documents);
    assert!(
        !values.iter().any(|v| v["process"]["args"].as_array().is_some_and(|a| a.iter().any(|x| x == "set-up"))),
        "the set-up task's exec was decided: {values:#?}"
    );
    let exec_log = values
        .iter()
        .find(|v| v["event"]["action"] == "exec" && v["event"]["kind"] == "event")
        .unwrap_or_else(|| panic!("no exec log in {values:#?}"));
    assert_eq!(exec_log["data_stream"]["dataset"], "cloud_defend.process");
    assert_eq!(exec_log["data_stream"]["namespace"], "testns");
    assert_eq!(exec_log["container"]["id"], id.as_str());
    assert_eq!(exec_log["container"]["name"], "web");
    // The bare name, as the original writes it.
    assert_eq!(exec_log["container"]["image"]["name"], "nginx");
    assert_eq!(exec_log["container"]["image"]["tag"], "1.25");
    assert_eq!(exec_log["orchestrator"]["namespace"], "prod");
    assert_eq!(exec_log["orchestrator"]["resource"]["name"], "web-7d9f");
    assert_eq!(exec_log["orchestrator"]["cluster"]["name"], "test-cluster");
    assert_eq!(exec_log["host"]["name"], "node-under-test");
    assert_eq!(exec_log["cloud_defend"]["package_policy_revision"], 7);
    assert_eq!(exec_log["event"]["type"], serde_json::json!(["start"]));
    assert!(exec_log["process"]["entity_id"].as_str().is_some_and(|s| !s.is_empty()));
    // The machine id, or without one an id kept in the state directory;
    // never the kernel's default host name `(none)` (issue 12).
    assert!(exec_log["agent"]["id"].as_str().is_some_and(|id| id.len() >= 32), "{}", exec_log["agent"]);
    // The shell's exec of /bin/true: the executable as the kernel resolved
    // it, as the task sees it from the container's root, and the arguments
    // it copied.
    let true_exe = "/bin/true";
    assert!(Path::new(CONTAINER_ROOT).join("bin/true").is_file());
    let true_exec =
        values.iter().find(|v| v["event"]["kind"] == "alert").unwrap_or_else(|| panic!("no alert in {values:#?}"));
    assert_eq!(true_exec["data_stream"]["dataset"], "cloud_defend.alerts");
    assert_eq!(true_exec["process"]["executable"], true_exe);
    assert_eq!(true_exec["process"]["name"], "true");
    // Every selector the fired responses matched, as the original records them.
    assert_eq!(true_exec["cloud_defend"]["matched_selectors"], serde_json::json!(["prodExecs", "anyTrue"]));
    // Decided by the exec check, or (audit mode) from the exec tracepoint.
    let hooks = if daemon.lsm() {
        serde_json::json!(["lsm__bprm_check_security", "tracepoint__sched_process_exec"])
    } else {
        serde_json::json!(["tracepoint__sched_process_exec"])
    };
    assert_eq!(true_exec["cloud_defend"]["hook_point"], hooks);
    let logged_true = values
        .iter()
        .find(|v| v["process"]["executable"] == true_exe && v["event"]["kind"] == "event")
        .unwrap_or_else(|| panic!("no log of /bin/true in {values:#?}"));
    assert_eq!(logged_true["process"]["args"], serde_json::json!(["/bin/true", "first arg", "x"]));
    assert_eq!(logged_true["process"]["command_line"], "/bin/true 'first arg' x");
    assert_eq!(logged_true["user"]["id"], "0");
    assert!(logged_true["event"]["created"].is_string());
    // Its end agrees with its exec on the process.
    let end = values
        .iter()
        .find(|v| v["event"]["action"] == "end" && v["process"]["pid"] == logged_true["process"]["pid"])
        .unwrap_or_else(|| panic!("no end of /bin/true in {values:#?}"));
    assert_eq!(end["event"]["type"], serde_json::json!(["end"]));
    assert_eq!(end["process"]["exit_code"], 0);
    for field in ["executable", "name", "args", "entity_id", "working_directory"] {
        assert_eq!(end["process"].get(field), logged_true["process"].get(field), "process.{field}");
    }
    // Ids are unique.
    let mut ids: Vec<&str> = documents.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), documents.len());

    // A bad artifact is refused; the policy in force stays.
    std::fs::write(&artifact, b"not an artifact").unwrap();
    let mut out = Vec::new();
    let error = daemon.reload(&mut out).unwrap_err();
    assert!(error.contains("not") && error.contains("test.d4c"), "{error}");
    assert_eq!(daemon.policy().revision, 7);
    // A good one is switched to; documents carry its revision.
    let newer = compile(dir.path(), "test", 8, POLICY);
    assert_eq!(newer, artifact);
    let counted = daemon.kernel_counters().unwrap();
    daemon.reload(&mut out).unwrap();
    assert_eq!(daemon.policy().revision, 8);
    // The new probes count from zero; the daemon's counters go on.
    let after = daemon.kernel_counters().unwrap();
    assert!(counted.iter().sum::<u64>() > 0, "{counted:?}");
    assert!(after.iter().zip(&counted).all(|(a, c)| a >= c), "{after:?} < {counted:?}");
    // The new probes are pinned; the old generation is gone.
    let generations: Vec<PathBuf> = std::fs::read_dir(&pin_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(generations, [daemon.pinned().unwrap().to_path_buf()]);
    assert!(!first_generation.exists());
    assert_eq!(daemon.counters().reloads, 1);
    assert_eq!(daemon.counters().reloads_refused, 1);
    run_in(&cgroup.leaf, "/bin/true again");
    let documents = drain_until(&mut daemon, |d| d.iter().any(|d| d.class == Class::Alert));
    let values = parsed(&documents);
    assert!(values.iter().all(|v| v["cloud_defend"]["package_policy_revision"] == 8), "{values:#?}");

    // The container's cgroup goes: the container is forgotten.
    drop(cgroup);
    daemon.scan();
    assert_eq!(daemon.containers().len(), 0);
    assert_eq!(daemon.counters().containers_removed, 1);

    // The daemon goes; its probes stay until uninstalled.
    let config = daemon.config().clone();
    let lsm = daemon.lsm();
    let pins = std::fs::read_dir(daemon.pinned().unwrap()).unwrap().count();
    drop(daemon);
    assert!(pin_dir.exists());
    // Every program's link: the tracepoints', and the LSM hooks' with the LSM.
    let tracepoints = d4c_kernel_probes::probes::BTF_TRACEPOINTS.len() + d4c_kernel_probes::probes::TRACEPOINTS.len();
    assert!(if lsm { pins > tracepoints } else { pins == tracepoints }, "{pins} pins");
    assert_eq!(d4c_runtime::daemon::uninstall(&config).unwrap(), pins);
    assert!(!pin_dir.exists());
}

/// `cloud_defend.package_policy_revision` is a `short` in the integration's
/// mappings: an artifact whose revision is over 32,767 is refused at load
/// (`d4cc compile` refuses to write one; this one is patched, its content
/// digest made again, so that only the revision is wrong).
#[test]
fn an_artifact_whose_revision_is_over_a_short_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = compile(dir.path(), "test", d4c_artifact::MAX_REVISION, POLICY);
    assert_eq!(d4c_runtime::load::load(&path, None).unwrap().0.revision, 32_767);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[32..40].copy_from_slice(&(d4c_artifact::MAX_REVISION + 1).to_le_bytes());
    let length = usize::try_from(u64::from_le_bytes(bytes[112..120].try_into().unwrap())).unwrap();
    bytes[80..112].fill(0);
    let digest = d4c_artifact::sha256(&bytes[..length]);
    bytes[80..112].copy_from_slice(&digest);
    std::fs::write(&path, &bytes).unwrap();
    let error = d4c_runtime::load::load(&path, None).unwrap_err().to_string();
    assert!(error.contains("revision 32768") && error.contains("short"), "{error}");
}

/// Regression (issue 14, fault 12): an escape sequence and a carriage
/// return in an artifact's policy name reached the terminal through
/// `d4c-runtime --check` (and the daemon's start report, which shows the
/// name the same way).
#[test]
fn control_characters_are_escaped_in_the_check_report() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lint) = d4cc::lint::lint_bytes("policy.yaml", POLICY.as_bytes().to_vec());
    let options =
        d4cc::compile::CompileOptions { policy_name: "web\u{1b}[2J\rprod".into(), revision: 1, created_unix: None };
    let bytes = d4cc::compile::compile(POLICY.as_bytes(), &lint.checked.unwrap(), &options).unwrap();
    let path = dir.path().join("policy.d4c");
    std::fs::write(&path, bytes).unwrap();
    let config = Config { artifact: Some(path), ..Config::default() };
    let report = d4c_runtime::check(&config).unwrap();
    assert!(!report.contains(['\r', '\u{1b}']), "{report:?}");
    assert!(report.contains("policy web\\u{1b}[2J\\rprod revision 1"), "{report}");
}
