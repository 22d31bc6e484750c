//! `d4c-vmtest runtime`: the whole product in the guest. The real
//! `d4c-runtime` binary loads a compiled policy (the shipped
//! drift-prevention policy), discovers a runc container started after it
//! from the container's cgroup and its bundle's CRI annotations, blocks
//! drift in it, and delivers the alert over HTTP to a `_bulk` endpoint in
//! the guest ([`BulkSink`]); the documents are checked field by field.
//!
//! Then the operations promises: a killed daemon's probes keep enforcing
//! (they are pinned); a restarted daemon takes over without a gap; a new
//! artifact is switched to on SIGHUP and its revision is in the documents;
//! SIGTERM ends the daemon cleanly; `--uninstall` ends enforcement.
//!
//! Out: a summary with the figures (start to enforcing, registration
//! window, reload time, resident memory), or the first failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bulk_sink::{BulkSink, Received};
use crate::bundle::{Actor, AgentOp, Container, ContainerSpec};

const WORKDIR: &str = "/tmp/d4c-vmtest-runtime";
pub(crate) const RUNTIME: &str = "/d4c-runtime";
const POLICY: &str = "/deploy/policies/drift-prevention.yaml";
pub(crate) const LISTEN: &str = "127.0.0.1:9464";
pub(crate) const SINK: &str = "127.0.0.1:9200";
/// How long a document may take from the syscall to the endpoint (TCG is
/// slow; the flush interval is 100 ms).
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

fn spec() -> ContainerSpec {
    ContainerSpec {
        name: "web".into(),
        pod_uid: "0d4c1000-5a0e-4e57-8000-00000000d4c1".into(),
        image: Some("docker.io/library/debian:12".into()),
        namespace: Some("shop".into()),
        pod: Some("web-1".into()),
        files: vec![("/usr/bin/tool".into(), 0o755), ("/etc/app.conf".into(), 0o644)],
        ..ContainerSpec::default()
    }
}

/// Compiles the policy at `source` into `out` as the drift-prevention
/// policy with `revision`.
fn compile(source: &Path, out: &Path, revision: u64, edit: impl Fn(String) -> String) -> Result<(), String> {
    compile_named(source, out, "drift-prevention", revision, edit)
}

/// Compiles the policy at `source`, edited by `edit`, into `out` with
/// `name` and `revision`.
pub(crate) fn compile_named(
    source: &Path,
    out: &Path,
    name: &str,
    revision: u64,
    edit: impl Fn(String) -> String,
) -> Result<(), String> {
    let text = std::fs::read_to_string(source).map_err(|e| format!("{}: {e}", source.display()))?;
    let text = edit(text);
    let (_, lint) = d4cc::lint::lint_bytes(source.display().to_string(), text.as_bytes().to_vec());
    let checked = lint.checked.ok_or_else(|| format!("{} does not lint", source.display()))?;
    let options = d4cc::compile::CompileOptions { policy_name: name.into(), revision, created_unix: None };
    let bytes = d4cc::compile::compile(text.as_bytes(), &checked, &options).map_err(|e| e.to_string())?;
    // Beside, then renamed: as a ConfigMap update lands.
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
}

/// The daemon under test.
pub(crate) struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(config: &Path, log: &Path) -> Result<(Daemon, Duration), String> {
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let started = Instant::now();
        let child = Command::new(RUNTIME)
            .arg("--config")
            .arg(config)
            .env("D4C_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start {RUNTIME}: {e}"))?;
        let mut daemon = Daemon { child, log: log.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                return Err(format!("d4c-runtime exited ({status}) before it was ready: {}", daemon.log_tail()));
            }
            let answer = http_get("/readyz");
            if answer.as_ref().is_ok_and(|(status, _)| *status == 200) {
                return Ok((daemon, started.elapsed()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "d4c-runtime was not ready within 120 s (GET /readyz: {answer:?}): {}",
                    daemon.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines.get(lines.len().saturating_sub(12)..).unwrap_or_default().join(" | ")
    }

    /// The daemon's figure line `started in N ms`.
    fn start_ms(&self) -> Option<f64> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let line = text.lines().find(|l| l.trim_start().starts_with("started in"))?;
        line.split_whitespace().nth(2)?.parse().ok()
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()
    }

    pub(crate) fn signal(&self, signal: i32) -> Result<(), String> {
        let pid = i32::try_from(self.child.id()).map_err(|e| e.to_string())?;
        crate::sys::kill(pid, signal).map_err(|e| format!("kill -{signal} d4c-runtime: {e}"))
    }

    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!("d4c-runtime did not exit within {timeout:?}: {}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on the daemon's endpoint: status and body.
fn http_get(path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(LISTEN).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nhost: d4c\r\nconnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// A metric's value from `/metrics` (the first sample whose line starts
/// with `prefix`).
pub(crate) fn metric(prefix: &str) -> Option<f64> {
    let (_, body) = http_get("/metrics").ok()?;
    body.lines().find(|l| l.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
}

/// Waits (60 s at most) until the metrics say revision `revision` is in force.
fn wait_revision(daemon: &Daemon, revision: u64) -> Result<(), String> {
    let wanted = format!("revision=\"{revision}\"");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http_get("/metrics").map(|(_, b)| b.contains(&wanted)).unwrap_or(false) {
        if Instant::now() > deadline {
            return Err(format!("revision {revision} was not in force within 60 s: {}", daemon.log_tail()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Stages a one-op actor and performs `op`; returns its errno.
fn act(container: &mut Container, op: AgentOp) -> Result<i32, String> {
    act_as(container, 0, op)
}

/// Stages a one-op actor acting as user `uid` and performs `op`; returns
/// its errno.
fn act_as(container: &mut Container, uid: u32, op: AgentOp) -> Result<i32, String> {
    let actor = Actor { exe: "/usr/bin/tool".into(), name: None, interactive: false, uid };
    let staged = container.stage(&actor)?;
    Ok(container.perform(staged, &op)?.errno)
}

/// The policy of step 4a: `late`, as a container's /etc/passwd names it,
/// may not run `/usr/bin/tool`.
const USERS_POLICY: &str = "process:
  selectors:
    - name: lateRunsTool
      operation: [exec]
      processExecutable: [/usr/bin/tool]
      processUserName: [late]
  responses:
    - match: [lateRunsTool]
      actions: [alert, block]
";

/// The uid step 4a names `late`.
const LATE_UID: u32 = 4242;

fn expect_errno(container: &mut Container, what: &str, op: AgentOp, want: i32) -> Result<(), String> {
    let got = act(container, op)?;
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: errno {got}, expected {want}"))
    }
}

fn create(path: &str) -> AgentOp {
    AgentOp::Create { path: path.into(), mode: 0o755 }
}

/// Checks a document's fields: every `(pointer, value)` must be there.
fn check_fields(doc: &Received, fields: &[(&str, Value)]) -> Result<(), String> {
    let mut wrong = Vec::new();
    for (pointer, want) in fields {
        let got = doc.source.pointer(pointer).cloned().unwrap_or(Value::Null);
        if &got != want {
            wrong.push(format!("{pointer} = {got}, expected {want}"));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("document {} in {}: {}", doc.id, doc.index, wrong.join("; ")))
    }
}

/// `agent.id`: the guest has no `/etc/machine-id`, so it is the UUID kept
/// in the state directory (never the host name `(none)`, issue 12), the
/// same in every document; `host.pid_ns_ino` the host's pid namespace.
fn check_agent_and_host(doc: &Received) -> Result<(), String> {
    let id = doc.source.pointer("/agent/id").and_then(Value::as_str).unwrap_or_default();
    let kept = std::fs::read_to_string(format!("{WORKDIR}/state/agent-id")).unwrap_or_default();
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    if id.is_empty() || id == "(none)" || (id != kept.trim() && id != machine_id.trim()) {
        return Err(format!("agent.id is {id:?}; the state directory keeps {kept:?}"));
    }
    if doc.source.pointer("/host/pid_ns_ino").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(format!("no host.pid_ns_ino: {}", doc.source));
    }
    Ok(())
}

fn find_alert<'a>(documents: &'a [Received], path: &str) -> Option<&'a Received> {
    documents.iter().find(|d| d.index.contains("alerts") && d.source.pointer("/file/path") == Some(&json!(path)))
}

fn wait_alert(sink: &BulkSink, path: &str) -> Result<Received, String> {
    sink.wait_for(DELIVERY_TIMEOUT, |d| find_alert(d, path).is_some())
        .ok()
        .and_then(|d| find_alert(&d, path).cloned())
        .ok_or_else(|| format!("no alert for {path} reached the endpoint within {DELIVERY_TIMEOUT:?}"))
}

/// The first process alert about executable `path` (a refused exec's
/// document describes the program called).
fn wait_alert_of(sink: &BulkSink, path: &str) -> Result<Received, String> {
    let find = |documents: &[Received]| {
        documents
            .iter()
            .find(|d| {
                d.index.contains("alerts")
                    && d.source.pointer("/event/category") == Some(&json!(["process"]))
                    && d.source.pointer("/process/executable") == Some(&json!(path))
            })
            .cloned()
    };
    sink.wait_for(DELIVERY_TIMEOUT, |d| find(d).is_some())
        .ok()
        .and_then(|d| find(&d))
        .ok_or_else(|| format!("no process alert for {path} reached the endpoint within {DELIVERY_TIMEOUT:?}"))
}

/// `d4c-runtime --uninstall`: the pinned probes are removed.
pub(crate) fn uninstall(config: &Path) -> Result<(), String> {
    let output = Command::new(RUNTIME)
        .args(["--config"])
        .arg(config)
        .arg("--uninstall")
        .output()
        .map_err(|e| format!("{RUNTIME} --uninstall: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("--uninstall failed: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

/// The daemon's configuration: `artifact`, its state in `workdir/state`,
/// delivery to the guest's `_bulk` endpoint ([`SINK`]) every 100 ms.
pub(crate) fn daemon_config(workdir: &Path, artifact: &Path) -> String {
    format!(
        "artifact = \"{}\"\nstate_dir = \"{}/state\"\nlisten = \"{LISTEN}\"\nnamespace = \"vmtest\"\n\
         node_name = \"vm-node\"\ncluster_name = \"vm-cluster\"\npin_dir = \"/sys/fs/bpf/d4c\"\n\
         rescan_interval = \"100ms\"\n\
         [delivery.sink.elasticsearch]\nurls = [\"http://{SINK}\"]\n[delivery.batch]\nflush_interval = \"100ms\"\n",
        artifact.display(),
        workdir.display()
    )
}

/// Runs the check; the summary on success.
pub fn run() -> Result<String, String> {
    let workdir = PathBuf::from(WORKDIR);
    let _ = std::fs::remove_dir_all(&workdir);
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{WORKDIR}: {e}"))?;
    let sink = BulkSink::start(SINK)?;
    let artifact = workdir.join("policy.d4c");
    compile(Path::new(POLICY), &artifact, 1, |t| t)?;
    let config = workdir.join("runtime.toml");
    std::fs::write(&config, daemon_config(&workdir, &artifact)).map_err(|e| format!("{}: {e}", config.display()))?;

    // 1. The daemon starts; a container starts after it and is found.
    let (mut daemon, ready_after) = Daemon::start(&config, &workdir.join("daemon-1.log"))?;
    let start_ms = daemon.start_ms().unwrap_or(f64::NAN);
    let rss_idle = daemon.rss_kib().unwrap_or(0);
    let spec = spec();
    let containers = workdir.join("containers");
    // A pod starts while the daemon enforces drift prevention: runc makes
    // the mount points the image lacks (`/etc/resolv.conf` in the pause
    // image, `/dev/termination-log` in every container) with mode 0755,
    // from inside the new container's cgroup, before the runtime has
    // registered it. That is the runtime setting the container up, not the
    // container (the probes' d4c_setup); decided, under the pending row,
    // it refused every pod its start (found once pods were made by
    // containerd). Regression: the pod must start.
    let mut container = Container::start(&spec, &containers)
        .map_err(|e| format!("regression-pod-starts-under-enforcing-daemon: the pod did not start: {e}"))?;
    // The pod's sandbox (pause) is a container of the kubepods tree too:
    // both are registered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric("d4c_containers ").unwrap_or(0.0) < 2.0 {
        if Instant::now() > deadline {
            return Err(format!(
                "the container and its pod's sandbox were not both registered within 30 s ({:?} containers): {}",
                metric("d4c_containers "),
                daemon.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let window = metric("d4c_registration_window_seconds{which=\"max\"}").unwrap_or(f64::NAN);
    // Decisions made while the container was pending (before its
    // registration): 0 means it was registered before its first decision.
    let pending_decisions = metric("d4c_kernel_events_total{counter=\"pending\"}").unwrap_or(f64::NAN);
    // The operations of runc setting the containers up, not decided.
    let setup_ops = metric("d4c_kernel_events_total{counter=\"setup\"}").unwrap_or(f64::NAN);
    if setup_ops.is_nan() || setup_ops < 1.0 {
        return Err(format!("the probes saw no container set-up operations ({setup_ops}): runc's were decided"));
    }

    // 2. Drift is blocked, /etc is protected, and the alert arrives whole.
    expect_errno(&mut container, "creating /usr/bin/dropper 0755", create("/usr/bin/dropper"), libc::EPERM)?;
    expect_errno(&mut container, "writing /etc/app.conf", AgentOp::Write("/etc/app.conf".into()), libc::EPERM)?;
    expect_errno(&mut container, "exec /usr/bin/tool", AgentOp::Exec("/usr/bin/tool".into()), 0)?;
    let alert = wait_alert(&sink, "/usr/bin/dropper")?;
    // The document as delivered, for `scripts/demo` to show.
    println!("D4C-VMTEST-RUNTIME-ALERT: {} {}", alert.index, alert.source);
    if alert.index != "logs-cloud_defend.alerts-vmtest" {
        return Err(format!("the alert went to {}", alert.index));
    }
    check_fields(
        &alert,
        &[
            ("/event/kind", json!("alert")),
            ("/event/category", json!(["file"])),
            ("/event/type", json!(["denied"])),
            ("/event/outcome", json!("failure")),
            ("/file/name", json!("dropper")),
            ("/container/id", json!(container.id())),
            ("/container/name", json!("web")),
            // The image's bare name, as the original writes it.
            ("/container/image/name", json!("debian")),
            ("/container/image/tag", json!("12")),
            ("/orchestrator/namespace", json!("shop")),
            ("/orchestrator/resource/name", json!("web-1")),
            ("/orchestrator/resource/type", json!("pod")),
            ("/orchestrator/cluster/name", json!("vm-cluster")),
            ("/host/name", json!("vm-node")),
            ("/process/executable", json!("/usr/bin/tool")),
            ("/process/name", json!("tool")),
            // The bundle's `cwd`, as the container sees it.
            ("/process/working_directory", json!("/")),
            ("/process/parent/executable", json!("/.d4c/agent")),
            ("/cloud_defend/hook_point", json!(["lsm__path_mknod"])),
            ("/event/action", json!("creation")),
            ("/user/id", json!("0")),
            ("/group/id", json!("0")),
            ("/cloud_defend/matched_selectors", json!(["executableDrift"])),
            ("/cloud_defend/operation", json!("createExecutable")),
            ("/cloud_defend/package_policy_id", json!("drift-prevention")),
            ("/cloud_defend/package_policy_revision", json!(1)),
            ("/cloud_defend/blocked", json!(true)),
            ("/data_stream/type", json!("logs")),
            ("/data_stream/dataset", json!("cloud_defend.alerts")),
            ("/data_stream/namespace", json!("vmtest")),
            ("/agent/type", json!("cloud-defend")),
            ("/ecs/version", json!("8.11.0")),
        ],
    )?;
    if alert.source.pointer("/@timestamp").and_then(Value::as_str).is_none_or(|t| !t.ends_with('Z')) {
        return Err(format!("the alert has no @timestamp: {}", alert.source));
    }
    check_agent_and_host(&alert)?;
    let etc = sink
        .wait_for(DELIVERY_TIMEOUT, |d| find_alert(d, "/etc/app.conf").is_some())
        .map_err(|_| "no alert for /etc/app.conf".to_owned())?;
    let etc = find_alert(&etc, "/etc/app.conf").ok_or("no alert for /etc/app.conf")?;
    check_fields(
        etc,
        &[
            ("/cloud_defend/matched_selectors", json!(["etcFileChanges"])),
            // A write-open of an existing file, as the original writes it.
            ("/event/action", json!("open")),
            ("/event/type", json!(["denied"])),
            ("/cloud_defend/hook_point", json!(["lsm__file_open"])),
            ("/file/mode", json!("0644")),
        ],
    )?;
    // Two kinds of exec run /usr/bin/tool: the agent staging an actor
    // (`/usr/bin/tool stage ...`, the program before it the agent's) and
    // the actor's exec op (`/usr/bin/tool noop FD`, the program before it
    // the staged actor's, /usr/bin/tool). Each document must have its own
    // program's arguments (issue 12): the op's is checked field by field
    // below, every staging's here.
    let tool_execs = |d: &[Received]| -> Vec<Received> {
        d.iter()
            .filter(|d| {
                d.index == "logs-cloud_defend.process-vmtest"
                    && d.source.pointer("/event/action") == Some(&json!("exec"))
                    && d.source.pointer("/process/executable") == Some(&json!("/usr/bin/tool"))
            })
            .cloned()
            .collect()
    };
    let after_tool = |d: &Received| {
        d.source
            .pointer("/process/previous")
            .and_then(Value::as_array)
            .is_some_and(|previous| previous.iter().any(|p| p.get("executable") == Some(&json!("/usr/bin/tool"))))
    };
    let documents = sink
        .wait_for(DELIVERY_TIMEOUT, |d| tool_execs(d).iter().any(after_tool))
        .map_err(|d| format!("no exec log of the actor's exec of /usr/bin/tool among {} documents", d.len()))?;
    let execs = tool_execs(&documents);
    for staging in execs.iter().filter(|d| !after_tool(d)) {
        // `tool stage CMD_FD REP_FD NAME TTY UID`, as the agent starts it.
        check_fields(staging, &[("/process/args/1", json!("stage")), ("/process/args_count", json!(7))])?;
    }
    let exec = execs.into_iter().find(after_tool).ok_or("no exec log")?;
    check_fields(
        &exec,
        &[
            ("/event/kind", json!("event")),
            ("/event/type", json!(["start"])),
            ("/event/outcome", json!("success")),
            ("/cloud_defend/matched_selectors", json!(["allProcesses"])),
            ("/cloud_defend/hook_point", json!(["lsm__bprm_check_security", "tracepoint__sched_process_exec"])),
            ("/container/id", json!(container.id())),
            // The new program, with the arguments the agent called it with.
            ("/process/name", json!("tool")),
            ("/process/args/0", json!("/usr/bin/tool")),
            ("/process/args/1", json!("noop")),
            ("/process/args_count", json!(3)),
        ],
    )?;

    // 3. A killed daemon's probes keep enforcing; a restarted one takes
    // over from them.
    daemon.signal(libc::SIGKILL)?;
    let _ = daemon.wait(Duration::from_secs(10))?;
    expect_errno(&mut container, "drift with the daemon dead", create("/usr/bin/dropper2"), libc::EPERM)?;
    let (mut daemon, _) = Daemon::start(&config, &workdir.join("daemon-2.log"))?;
    let generations = std::fs::read_dir("/sys/fs/bpf/d4c").map(|d| d.count()).unwrap_or(0);
    if generations != 1 {
        return Err(format!("{generations} pinned generations after the restart, expected 1 (the new daemon's)"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric("d4c_containers ").unwrap_or(0.0) < 2.0 {
        if Instant::now() > deadline {
            return Err("the restarted daemon did not register the running container and its sandbox".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    expect_errno(&mut container, "drift after the restart", create("/usr/bin/dropper3"), libc::EPERM)?;
    wait_alert(&sink, "/usr/bin/dropper3")?;

    // 4. A new revision on SIGHUP: drift is then only alerted.
    compile(Path::new(POLICY), &artifact, 2, |t| t.replacen("actions: [alert, block]", "actions: [alert]", 1))?;
    let reload_started = Instant::now();
    daemon.signal(libc::SIGHUP)?;
    wait_revision(&daemon, 2)?;
    let reload = reload_started.elapsed();
    expect_errno(&mut container, "drift under revision 2 (alert only)", create("/usr/bin/dropper4"), 0)
        .map_err(|e| format!("{e}; {}", daemon.log_tail()))?;
    let alert = wait_alert(&sink, "/usr/bin/dropper4")?;
    check_fields(&alert, &[("/cloud_defend/package_policy_revision", json!(2)), ("/event/type", json!(["creation"]))])?;
    let rss_after = daemon.rss_kib().unwrap_or(0);

    // 4a. Users by name, from the container's own /etc/passwd: a name the
    // file does not hold matches no one; once the file names the uid, the
    // runtime reads it again (at most a second later) and the name
    // decides. The file is changed from outside the container (as `useradd`
    // in it would change it), so no probe decides the change itself.
    let users = workdir.join("users.yaml");
    std::fs::write(&users, USERS_POLICY).map_err(|e| format!("{}: {e}", users.display()))?;
    compile_named(&users, &artifact, "drift-prevention", 3, |t| t)?;
    daemon.signal(libc::SIGHUP)?;
    wait_revision(&daemon, 3)?;
    let exec_tool = || AgentOp::Exec("/usr/bin/tool".into());
    let got = act_as(&mut container, LATE_UID, exec_tool())?;
    if got != 0 {
        return Err(format!(
            "uid {LATE_UID}, which /etc/passwd does not name, ran the tool with errno {got}, expected 0"
        ));
    }
    let passwd = container.host_path("/etc/passwd")?;
    let mut text = std::fs::read_to_string(&passwd).unwrap_or_default();
    text.push_str(&format!("late:x:{LATE_UID}:{LATE_UID}::/:/bin/sh\n"));
    std::fs::write(&passwd, text).map_err(|e| format!("{}: {e}", passwd.display()))?;
    let named_at = Instant::now();
    let passwd_change = loop {
        if act_as(&mut container, LATE_UID, exec_tool())? == libc::EPERM {
            break named_at.elapsed();
        }
        if named_at.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "uid {LATE_UID}, named `late` in /etc/passwd, still ran the tool 30 s later: {}",
                daemon.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let alert = wait_alert_of(&sink, "/usr/bin/tool")?;
    check_fields(&alert, &[("/user/id", json!(LATE_UID.to_string())), ("/user/name", json!("late"))])?;
    // Root is not `late`.
    expect_errno(&mut container, "root under the users policy", exec_tool(), 0)?;

    // 4b. The reload figure for a 4,096-selector artifact (a generated
    // policy): reported, not required, as the guest's memory bounds it.
    let large = workdir.join("large.yaml");
    std::fs::write(&large, d4c_testgen::generate_policy(4096, 7)).map_err(|e| format!("{}: {e}", large.display()))?;
    compile(&large, &artifact, 4, |t| t)?;
    let reload_started = Instant::now();
    daemon.signal(libc::SIGHUP)?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let reload_large = loop {
        let metrics = http_get("/metrics").map(|(_, b)| b).unwrap_or_default();
        if metrics.contains("revision=\"4\"") {
            break format!("{}", reload_started.elapsed().as_millis());
        }
        if metrics.lines().any(|l| l.starts_with("d4c_reloads_total{outcome=\"refused\"} 1")) {
            break format!(
                "refused({})",
                daemon.log_tail().chars().rev().take(300).collect::<String>().chars().rev().collect::<String>()
            );
        }
        if Instant::now() > deadline {
            break "not-within-180s".to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let rss_large = daemon.rss_kib().unwrap_or(0);

    // 5. SIGTERM: a clean exit; the probes stay. --uninstall ends them.
    daemon.signal(libc::SIGTERM)?;
    let status = daemon.wait(Duration::from_secs(60))?;
    if !status.success() {
        return Err(format!("d4c-runtime exited with {status} on SIGTERM: {}", daemon.log_tail()));
    }
    uninstall(&config)?;
    expect_errno(&mut container, "drift after --uninstall", create("/usr/bin/dropper5"), 0)?;
    container.stop()?;
    let all = sink.documents();
    // Every delivered document keeps the integration's field types.
    for doc in &all {
        let problems = d4c_runtime::fields::check(&doc.source);
        if !problems.is_empty() {
            return Err(format!("document {} in {} breaks the field table: {problems:?}", doc.id, doc.index));
        }
    }
    let documents = all.len();
    let bad = sink.bad_requests.lock().map(|b| b.clone()).unwrap_or_default();
    if !bad.is_empty() {
        return Err(format!("the endpoint could not read requests: {bad:?}"));
    }
    Ok(format!(
        "pod-under-daemon=started setup-ops={setup_ops} documents={documents} start-to-enforcing-ms={start_ms:.0} ready-after-ms={} registration-window-ms={:.0} pending-decisions={pending_decisions} \
         reload-ms={} passwd-change-ms={} reload-4096-selectors-ms={reload_large} rss-idle-kib={rss_idle} rss-after-kib={rss_after} \
         rss-4096-selectors-kib={rss_large}",
        ready_after.as_millis(),
        window * 1000.0,
        reload.as_millis(),
        passwd_change.as_millis()
    ))
}
