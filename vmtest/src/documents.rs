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
//! Invariant: nothing here reads the runtime's code paths; the expectation
//! is derived independently (the ECS field tables of the first seed), so a
//! change in the runtime that alters a document fails here.

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
    /// `cloud_defend.hook_point`: the hook that decided.
    pub hook_point: &'static str,
}

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

/// The documents for `events` (those with actions, in record order, all
/// decided by the hook of `op`): per event an alert when `alert` fired,
/// then a log when `log` fired; a block alone makes none.
pub fn expected(tables: &Tables, meta: &Meta, events: &[Event], op: &Op) -> Vec<Expected> {
    let mut out = Vec::new();
    for event in events {
        let verdict = tables.decide(meta, event);
        let selectors = &tables.kind(event.kind()).selectors;
        let matched: Vec<String> =
            verdict.matched.iter().filter_map(|i| selectors.get(*i).map(|s| s.name.clone())).collect();
        for (bit, alert) in [(Actions::ALERT, true), (Actions::LOG, false)] {
            if verdict.actions.contains(bit) {
                out.push(Expected {
                    alert,
                    event: event.clone(),
                    matched: matched.clone(),
                    blocked: verdict.actions.contains(Actions::BLOCK),
                    hook_point: hook_of(op),
                });
            }
        }
    }
    out
}

/// The ECS `event.category`, `event.action` and `event.type` of an
/// operation (the first seed's tables).
fn ecs_of(operation: Operation) -> (&'static str, &'static str, &'static str) {
    match operation {
        Operation::CreateExecutable | Operation::CreateFile => ("file", "creation", "creation"),
        Operation::ModifyExecutable | Operation::ModifyFile => ("file", "modification", "change"),
        Operation::DeleteFile => ("file", "deletion", "deletion"),
        Operation::ExecMemFd | Operation::Exec => ("process", "exec", "start"),
        Operation::Fork => ("process", "fork", "start"),
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
    let (operation, category, action, kind_type) = match &expected.event {
        Event::File(f) => {
            let (c, a, t) = ecs_of(f.operation);
            (f.operation, c, a, t)
        }
        Event::Process(p) => {
            let (c, a, t) = ecs_of(p.operation);
            (p.operation, c, a, t)
        }
    };
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
    want("/event/outcome", Value::from(if expected.blocked { "failure" } else { "success" }));
    want("/event/module", Value::from("cloud_defend"));
    want("/event/dataset", Value::from(format!("cloud_defend.{dataset}")));
    want("/event/id", Value::from(id.as_str()));
    want("/data_stream/type", Value::from("logs"));
    want("/data_stream/dataset", Value::from(format!("cloud_defend.{dataset}")));
    want("/data_stream/namespace", Value::from(setup.namespace));
    // cloud_defend.*
    want("/cloud_defend/operation", Value::from(operation.name()));
    want("/cloud_defend/hook_point", Value::from(expected.hook_point));
    want("/cloud_defend/matched_selectors", Value::from(expected.matched.clone()));
    want("/cloud_defend/package_policy_id", Value::from(setup.policy_id));
    want("/cloud_defend/package_policy_revision", Value::from(setup.revision));
    if expected.blocked {
        want("/cloud_defend/blocked", Value::Bool(true));
    }
    // file.* and process.*
    want("/process/pid", Value::from(pid));
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
        }
        Event::Process(p) => {
            want("/process/executable", Value::from(p.executable.as_str()));
            want("/process/name", Value::from(p.name.as_str()));
            want("/process/interactive", Value::Bool(p.interactive));
        }
    }
    if source.pointer("/process/entity_id").and_then(Value::as_str).is_none_or(str::is_empty) {
        other.push("`process.entity_id` is absent".into());
    }
    want("/process/entry_leader/entry_meta/type", Value::from("container"));
    // container.* and orchestrator.*
    want("/container/id", Value::from(acting.container_id));
    want("/container/name", Value::from(container.name.as_str()));
    let (full, _, tag) = d4c_artifact::event::split_image(container.image_reference());
    want("/container/image/name", Value::from(full));
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
    if !source.pointer("/@timestamp").and_then(Value::as_str).is_some_and(|t| t.len() == 24 && t.ends_with('Z')) {
        other.push(format!("`@timestamp` is {:?}, not RFC 3339 UTC with milliseconds", source.get("@timestamp")));
    }
    problems.extend(other);
    problems
}
