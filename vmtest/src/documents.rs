//! What a scenario step's documents must say, field by field.
//!
//! The scenario runner ([`crate::guest`]) runs the runtime's own record
//! path ([`d4c_runtime::daemon::Daemon`]) on the kernel's records and
//! delivers its documents to the guest's `_bulk` endpoint. Here, from the
//! prediction alone (the events the table evaluator says have actions,
//! their actions and matched selectors) and from what the runner set up
//! (the container, the actor, the runtime's configuration), each expected
//! document is described, and a received one is compared with it.
//!
//! What each document says (issue 12): the process the event is about
//! (an exec that happened: the new program, with the arguments the agent
//! passed; a fork: the new process, the actor its parent; a refused or
//! failed exec: the program called, with the arguments it was called with),
//! `event.action` and `cloud_defend.hook_point` by the hook as the first
//! seed's tables list them (a write-open is `open`, a rename `rename`, a
//! link `link`; an exec that happened was seen at `bprm_check_security`
//! and at `sched_process_exec`), `event.outcome`, the top-level `user.id`
//! (the actor's), `user.name` (as a declared `/etc/passwd` names it) and
//! `group.id`, `event.created`, `host.pid_ns_ino`, the bare
//! `container.image.name`; and every document keeps the integration's
//! field types (`d4c_runtime::fields`, the table `runtime/src/fields.txt`).
//!
//! Invariant: nothing here reads the runtime's code paths (but for the
//! field-type table, which is facts); the expectation is derived
//! independently (the ECS field tables of the first seed), so a change in
//! the runtime that alters a document fails here.

use std::collections::BTreeMap;

use d4c_artifact::eval::Tables;
use d4c_artifact::event::{Container as Meta, Event};
use d4c_artifact::ops::{Actions, Operation};
use d4c_grammar::Op;
use serde_json::Value;

use crate::bulk_sink::Received;
use crate::bundle::{Actor, ContainerSpec};
use crate::cri::Pod;

/// The runtime's configuration, as far as documents show it.
pub struct Setup<'a> {
    /// `data_stream.namespace`.
    pub namespace: &'a str,
    /// `orchestrator.cluster.name`.
    pub cluster_name: &'a str,
    /// `cloud_defend.package_policy_id`.
    pub policy_id: &'a str,
    /// `cloud_defend.package_policy_revision`.
    pub revision: u64,
}

/// Who acted: the step's actor, its pid, and its container.
pub struct Acting<'a> {
    /// The container, as started.
    pub container: &'a ContainerSpec,
    /// Its id, as containerd made it.
    pub container_id: &'a str,
    /// Its pod, as the sandbox was asked for (the kubelet's defaults
    /// where the spec names no namespace or pod).
    pub pod: &'a Pod,
    /// The actor.
    pub actor: &'a Actor,
    /// The actor's pid (in the guest's pid namespace, as records carry it).
    pub pid: u32,
}

/// One document the runtime must deliver for a step.
#[derive(Debug, Clone)]
pub struct Expected {
    /// An alert (else a log).
    pub alert: bool,
    /// The event the kernel reported (as predicted).
    pub event: Event,
    /// The selectors whose responses fired, in the policy's order.
    pub matched: Vec<String>,
    /// Whether a `block` response fired (the operation was refused).
    pub blocked: bool,
    /// `cloud_defend.hook_point`: the hook that decided, then the one that
    /// saw the operation happen or fail.
    pub hook_points: Vec<&'static str>,
    /// `event.action` and the `event.type` of an operation not refused.
    pub action: (&'static str, &'static str),
    /// The errno of an exec the LSM allowed that failed after (ENOEXEC of
    /// an empty file); `None` when it ran.
    pub exec_errno: Option<i32>,
}

/// ENOEXEC: an allowed exec of a file with no binary format fails after
/// the decision.
const ENOEXEC: i32 = 8;
/// The hook that decides an access ACL change on this kernel:
/// `inode_set_acl` from Linux 6.2, `inode_setxattr` before (what the
/// probes attach, `d4c_kernel_probes::probes::OPTIONAL_LSM_HOOKS`).
fn acl_hook() -> &'static str {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release.trim().split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
    if (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (6, 2) {
        "lsm__inode_set_acl"
    } else {
        "lsm__inode_setxattr"
    }
}

/// The hook that decides a scenario operation as the agent performs it
/// (`open(O_CREAT)` is checked by `security_path_mknod`, `truncate(2)` by
/// `security_path_truncate`, `fexecve` by the exec check).
pub fn hook_of(op: &Op) -> &'static str {
    match op {
        Op::Create { .. } | Op::Mknod { .. } => "lsm__path_mknod",
        Op::Write(_) => "lsm__file_open",
        Op::Truncate(_) => "lsm__path_truncate",
        Op::Chmod { .. } => "lsm__path_chmod",
        Op::Rename { .. } | Op::Exchange { .. } => "lsm__path_rename",
        Op::Symlink { .. } => "lsm__path_symlink",
        Op::Setfacl { .. } => acl_hook(),
        // Never decided: no document names its hook.
        Op::Mkdir { .. } => "lsm__path_mkdir",
        Op::Link { .. } => "lsm__path_link",
        Op::Unlink(_) => "lsm__path_unlink",
        Op::Exec(_) | Op::MemfdExec(_) => "lsm__bprm_check_security",
        Op::Fork => "lsm__task_alloc",
    }
}

/// The hook whose record says an allowed exec or fork happened, or that
/// an allowed exec failed (`None`: a file operation's hook is its event).
fn completion_of(op: &Op, failed: bool) -> Option<&'static str> {
    match (op, failed) {
        (Op::Exec(_) | Op::MemfdExec(_), false) => Some("tracepoint__sched_process_exec"),
        (Op::Exec(_), true) => Some("tracepoint__syscalls_sys_exit_execve"),
        (Op::MemfdExec(_), true) => Some("tracepoint__syscalls_sys_exit_execveat"),
        (Op::Fork, _) => Some("tracepoint__sched_process_fork"),
        _ => None,
    }
}

/// The documents for `events` (those with actions, in record order, all
/// decided by the hook of `op`, whose syscall returned `errno`): per event
/// an alert when `alert` fired, then a log when `log` fired; a block alone
/// makes none.
pub fn expected(tables: &Tables, meta: &Meta, events: &[Event], op: &Op, errno: i32) -> Vec<Expected> {
    let mut out = Vec::new();
    let exec = matches!(op, Op::Exec(_) | Op::MemfdExec(_));
    for event in events {
        let verdict = tables.decide(meta, event);
        let selectors = &tables.kind(event.kind()).selectors;
        let matched: Vec<String> =
            verdict.matched.iter().filter_map(|i| selectors.get(*i).map(|s| s.name.clone())).collect();
        let blocked = verdict.actions.contains(Actions::BLOCK);
        // An exec this decision allowed that failed all the same: no
        // binary format (ENOEXEC), or the other decision of a fileless
        // exec (`execMemFd`, `exec`) refused it (EPERM): its document says
        // so, with the errno, at the syscall's return.
        let exec_errno = (exec && (errno == ENOEXEC || (errno != 0 && !blocked))).then_some(errno);
        let mut hook_points = vec![hook_of(op)];
        if !blocked {
            hook_points.extend(completion_of(op, exec_errno.is_some()));
        }
        for (bit, alert) in [(Actions::ALERT, true), (Actions::LOG, false)] {
            if verdict.actions.contains(bit) {
                out.push(Expected {
                    alert,
                    event: event.clone(),
                    matched: matched.clone(),
                    blocked,
                    hook_points: hook_points.clone(),
                    action: action_of(op, event),
                    exec_errno,
                });
            }
        }
    }
    out
}

/// `event.action` and `event.type` of an event of `op`, by the hook that
/// decides it, as the first seed's tables list them: a write-open is
/// `open` (`change`), a rename or an exchange `rename` (the type of what
/// happens at each name), a link `link`, a chmod, an access ACL set or a
/// truncate `modification` (`change`); the rest (a creation, a symbolic
/// link, an unlink) by the operation (runtime/README.md).
fn action_of(op: &Op, event: &Event) -> (&'static str, &'static str) {
    let operation = match event {
        Event::File(f) => f.operation,
        Event::Process(p) => p.operation,
        Event::Network(n) => n.operation,
    };
    let (by_operation, kind_type) = match operation {
        Operation::ExecMemFd | Operation::Exec => return ("exec", "start"),
        Operation::Fork => return ("fork", "start"),
        Operation::Connect | Operation::SendTo => return ("connection_attempted", "start"),
        Operation::Bind => return ("bind", "info"),
        Operation::Listen => return ("listen", "start"),
        Operation::CreateExecutable | Operation::CreateFile => ("creation", "creation"),
        Operation::ModifyExecutable | Operation::ModifyFile => ("modification", "change"),
        Operation::DeleteFile => ("deletion", "deletion"),
    };
    match op {
        Op::Write(_) => ("open", kind_type),
        Op::Rename { .. } | Op::Exchange { .. } => ("rename", kind_type),
        Op::Link { .. } => ("link", kind_type),
        Op::Truncate(_) | Op::Chmod { .. } | Op::Setfacl { .. } => ("modification", "change"),
        _ => (by_operation, kind_type),
    }
}

/// The ECS `event.category` of an operation.
fn category_of(operation: Operation) -> &'static str {
    match operation {
        Operation::ExecMemFd | Operation::Exec | Operation::Fork => "process",
        Operation::Connect | Operation::SendTo | Operation::Bind | Operation::Listen => "network",
        _ => "file",
    }
}

/// What differs between the `received` document and `expected`, for
/// `acting`; empty when nothing does.
pub fn compare(received: &Received, expected: &Expected, setup: &Setup<'_>, acting: &Acting<'_>) -> Vec<String> {
    let Received { index, id, source } = received;
    let Acting { container, actor, pid, .. } = *acting;
    let mut problems = Vec::new();
    // Problems found other than by `want` (which holds `problems`).
    let mut other = Vec::new();
    let mut want = |pointer: &str, value: Value| {
        let got = source.pointer(pointer);
        if got != Some(&value) {
            let field = pointer.trim_start_matches('/').replace('/', ".");
            problems.push(format!("`{field}` is {}, expected {value}", got.map_or("absent".into(), Value::to_string)));
        }
    };
    let operation = match &expected.event {
        Event::File(f) => f.operation,
        Event::Process(p) => p.operation,
        Event::Network(n) => n.operation,
    };
    let category = category_of(operation);
    let (action, kind_type) = expected.action;
    for problem in d4c_runtime::fields::check(source) {
        other.push(format!("the field table: {problem}"));
    }
    let dataset = if expected.alert { "alerts" } else { category };
    let stream = format!("logs-cloud_defend.{dataset}-{}", setup.namespace);
    if *index != stream {
        other.push(format!("delivered to `{index}`, expected `{stream}`"));
    }
    // event.* and data_stream.*
    want("/event/kind", Value::from(if expected.alert { "alert" } else { "event" }));
    want("/event/category", Value::from(vec![category]));
    want("/event/type", Value::from(vec![if expected.blocked { "denied" } else { kind_type }]));
    want("/event/action", Value::from(action));
    let failed = expected.blocked || expected.exec_errno.is_some();
    want("/event/outcome", Value::from(if failed { "failure" } else { "success" }));
    if let Some(errno) = expected.exec_errno {
        want("/cloud_defend/errno", Value::from(errno));
    }
    if source.pointer("/event/created").and_then(Value::as_str).is_none_or(|t| !t.ends_with('Z')) {
        other.push("`event.created` is absent".into());
    }
    want("/event/module", Value::from("cloud_defend"));
    want("/event/dataset", Value::from(format!("cloud_defend.{dataset}")));
    want("/event/id", Value::from(id.as_str()));
    want("/data_stream/type", Value::from("logs"));
    want("/data_stream/dataset", Value::from(format!("cloud_defend.{dataset}")));
    want("/data_stream/namespace", Value::from(setup.namespace));
    // cloud_defend.*
    want("/cloud_defend/operation", Value::from(operation.name()));
    want("/cloud_defend/hook_point", Value::from(expected.hook_points.clone()));
    want("/cloud_defend/matched_selectors", Value::from(expected.matched.clone()));
    want("/cloud_defend/package_policy_id", Value::from(setup.policy_id));
    want("/cloud_defend/package_policy_revision", Value::from(setup.revision));
    if expected.blocked {
        want("/cloud_defend/blocked", Value::Bool(true));
    }
    // file.* and process.*: a fork that happened describes the new
    // process, whose parent is the actor.
    let forked = operation == Operation::Fork && !expected.blocked;
    if forked {
        want("/process/parent/pid", Value::from(pid));
        if source.pointer("/process/pid") == Some(&Value::from(pid)) {
            other.push("a fork's document describes the forker, not the new process".into());
        }
    } else {
        want("/process/pid", Value::from(pid));
    }
    // The top-level user and group: the agent's (root in the containers).
    // The actor's user (`user` steps act as it; the agent keeps gid 0),
    // named as the container's declared /etc/passwd names it.
    let uid = acting.actor.uid;
    want("/user/id", Value::from(uid.to_string()));
    want("/group/id", Value::from("0"));
    if let Some(passwd) = &acting.container.passwd {
        let named = passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let (name, _, id) = (fields.next()?, fields.next()?, fields.next()?);
            (id.parse::<u32>().ok()? == uid).then_some(name)
        });
        if let Some(name) = named {
            want("/user/name", Value::from(name));
        }
    }
    match &expected.event {
        Event::File(f) if f.operation != Operation::ExecMemFd => {
            let path = f.path.clone().unwrap_or_default();
            let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
            want("/file/path", Value::from(path.as_str()));
            want("/file/name", Value::from(name.as_str()));
            if f.directory {
                want("/file/type", Value::from("dir"));
            } else if source.pointer("/file/type").is_some() {
                other.push(format!("`file.type` is present for the file `{path}`"));
            }
            match name.rsplit_once('.').filter(|(stem, ext)| !stem.is_empty() && !ext.is_empty() && !f.directory) {
                Some((_, extension)) => want("/file/extension", Value::from(extension)),
                None => {
                    if source.pointer("/file/extension").is_some() {
                        other.push(format!("`file.extension` is present for `{name}`, which has none"));
                    }
                }
            }
            want("/process/executable", Value::from(actor.exe.as_str()));
            want("/process/interactive", Value::Bool(actor.interactive));
        }
        Event::File(_) => {
            if source.get("file").is_some() {
                other.push("a fileless exec's document has `file`".into());
            }
            exec_args(source, &mut other);
        }
        Event::Process(p) if p.operation == Operation::Fork => {
            // The new process runs what its parent ran.
            want("/process/executable", Value::from(p.executable.as_str()));
            want("/process/interactive", Value::Bool(p.interactive));
        }
        Event::Process(p) => {
            // The exec's own program (the new one when it ran, the one
            // called when it was refused or failed), with its arguments.
            want("/process/executable", Value::from(p.executable.as_str()));
            want("/process/name", Value::from(p.name.as_str()));
            want("/process/interactive", Value::Bool(p.interactive));
            exec_args(source, &mut other);
        }
        Event::Network(n) => {
            // ECS: the peer of an outgoing operation is the destination;
            // a bound or listening socket is the destination of what it
            // will accept. The address as normalised (an IPv4-mapped
            // peer is its IPv4 address).
            let address = n.address.to_canonical();
            want("/destination/ip", Value::from(address.to_string()));
            want("/destination/port", Value::from(n.port));
            want("/network/transport", Value::from(n.transport.name()));
            want("/network/type", Value::from(if address.is_ipv4() { "ipv4" } else { "ipv6" }));
            let direction = match n.operation {
                Operation::Bind | Operation::Listen => "ingress",
                _ => "egress",
            };
            want("/network/direction", Value::from(direction));
            want("/process/executable", Value::from(n.executable.as_str()));
            want("/process/name", Value::from(n.name.as_str()));
        }
    }
    if source.pointer("/process/entity_id").and_then(Value::as_str).is_none_or(str::is_empty) {
        other.push("`process.entity_id` is absent".into());
    }
    want("/process/entry_leader/entry_meta/type", Value::from("container"));
    // container.* and orchestrator.*
    want("/container/id", Value::from(acting.container_id));
    want("/container/name", Value::from(container.name.as_str()));
    // The image's bare name, as the original writes it.
    let (_, name, tag) = d4c_artifact::event::split_image(container.image_reference());
    want("/container/image/name", Value::from(name));
    if let Some(tag) = tag {
        want("/container/image/tag", Value::from(tag));
    }
    want("/orchestrator/type", Value::from("kubernetes"));
    want("/orchestrator/cluster/name", Value::from(setup.cluster_name));
    want("/orchestrator/resource/type", Value::from("pod"));
    want("/orchestrator/resource/id", Value::from(container.pod_uid.as_str()));
    want("/orchestrator/namespace", Value::from(acting.pod.namespace.as_str()));
    want("/orchestrator/resource/name", Value::from(acting.pod.name.as_str()));
    // By key, as the API's label map is ordered.
    let labels: BTreeMap<&str, &str> = container.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    if labels.is_empty() {
        if source.pointer("/orchestrator/resource/label").is_some() {
            other.push("`orchestrator.resource.label` is present for a pod without labels".into());
        }
    } else {
        want("/orchestrator/resource/label", Value::from(labels));
    }
    // The node's and the agent's.
    want("/agent/type", Value::from("cloud-defend"));
    if source.pointer("/host/hostname").and_then(Value::as_str).is_none_or(str::is_empty) {
        other.push("`host.hostname` is absent".into());
    }
    if source.pointer("/host/pid_ns_ino").and_then(Value::as_str).is_none_or(str::is_empty) {
        other.push("`host.pid_ns_ino` is absent".into());
    }
    if source.pointer("/agent/id").and_then(Value::as_str).is_none_or(|id| id.is_empty() || id == "(none)") {
        other.push(format!("`agent.id` is {:?}", source.pointer("/agent/id")));
    }
    if !source.pointer("/@timestamp").and_then(Value::as_str).is_some_and(|t| t.len() == 24 && t.ends_with('Z')) {
        other.push(format!("`@timestamp` is {:?}, not RFC 3339 UTC with milliseconds", source.get("@timestamp")));
    }
    problems.extend(other);
    problems
}

/// An exec's `process.args`: the agent's call, `[path, "noop", fd]` (the
/// path as the actor named it, then its report descriptor's number).
fn exec_args(source: &Value, problems: &mut Vec<String>) {
    let args = source.pointer("/process/args").and_then(Value::as_array);
    let ok = args.is_some_and(|a| {
        a.len() == 3
            && a.get(1) == Some(&Value::from("noop"))
            && a.get(2)
                .and_then(Value::as_str)
                .is_some_and(|fd| !fd.is_empty() && fd.bytes().all(|b| b.is_ascii_digit()))
    });
    if !ok {
        problems.push(format!("an exec's `process.args` is {:?}, not the agent's [path, \"noop\", fd]", args));
    }
}
