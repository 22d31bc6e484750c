//! ECS documents from decoded events.
//!
//! In: a decision with what became of it ([`Report`]: the decision, its
//! matched selectors, its [`Outcome`], the process the document describes
//! and its ancestors, the container's metadata, the user's and group's
//! names), or a process's end ([`Ending`]), and the node's facts. Out: one
//! [`Document`] per action that asks for one: `log` to
//! `logs-cloud_defend.file-<ns>` or `logs-cloud_defend.process-<ns>`,
//! `alert` to `logs-cloud_defend.alerts-<ns>`, with the fields of the
//! original's tables (see `runtime/README.md` for each field's source) and
//! d4c's own `cloud_defend.*` facts (the operation, the path was cut, the
//! container was pending, the errno of an exec that failed). Every field
//! is in `fields.txt` with its mapped type ([`crate::fields`]).
//!
//! The process a document describes is the one the event is about: an
//! exec that happened, the new program (as the process cache has it after
//! the exec); a fork that happened, the new process; a refused exec, the
//! program refused, with the arguments it was called with. An operation's
//! `event.action` and `cloud_defend.hook_point` follow its hook, as the
//! original's tables list them.
//!
//! Invariants: the same decision always gives the same documents with the
//! same ids (the ids make delivery idempotent); nothing here reads files or
//! blocks, nor reads the probes' ABI (the events are decoded already). What
//! stays the same from one document to the next (the node's members, a
//! container's, a process's) is serialised once and copied ([`FixedJson`],
//! [`ProcessJson`]): a cached text is used only while what it was written
//! from is unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use d4c_artifact::ops::{Actions, Operation};
use serde_json::{json, Map, Value};

use crate::containers::Metadata;
use crate::document::{Class, Document};
use crate::event::{Decision, Exit, FileType, Hook};
use crate::inflight::Outcome;
use crate::json::Json;
use crate::process::Process;
use crate::users::Names;

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

/// The facts every document carries: the agent, the node, the cluster and
/// the policy.
#[derive(Debug, Default)]
pub struct Facts {
    /// `agent.id`: stable per node (the machine id, or configured).
    pub agent_id: String,
    /// `agent.version`.
    pub agent_version: String,
    /// `host.*`, as an object.
    pub host: Value,
    /// `cloud.*`, when configured.
    pub cloud: Option<Value>,
    /// `orchestrator.cluster.id`: the `kube-system` namespace's UID.
    pub cluster_id: Option<String>,
    /// `orchestrator.cluster.name`, from configuration.
    pub cluster_name: Option<String>,
    /// `data_stream.namespace`.
    pub namespace: String,
    /// `cloud_defend.package_policy_id`: the policy's name.
    pub policy_id: String,
    /// `cloud_defend.package_policy_revision` (a short: at most
    /// [`d4c_artifact::MAX_REVISION`], as [`crate::load`] makes sure).
    pub policy_revision: u16,
    /// The artifact's content digest (hex).
    pub policy_digest: String,
    /// Wall-clock nanoseconds since the Unix epoch at boot: added to a
    /// record's boot-time stamp gives its wall-clock time.
    pub boot_epoch_ns: u64,
    /// The boot id: part of every document id, so that ids never repeat
    /// across reboots (boot-time stamps do).
    pub boot_id: String,
    /// Caches of the serialised members that stay the same from one
    /// document to the next: leave it default; they fill on first use.
    pub fixed_json: FixedJson,
}

/// Serialised members that stay the same from one document to the next.
///
/// Invariants: the node's members (`ecs`, `agent`, `host`, `cloud`) are
/// written once, from facts fixed for the daemon's life (or until
/// [`FixedJson::forget_node`]); the policy's, until
/// [`FixedJson::forget_policy`]; a container's members (`container`,
/// `orchestrator`) are used only while its metadata and the cluster facts
/// equal those they were written from; at most [`CACHED_CONTAINERS`]
/// containers are kept. `event`'s members but its time and id, and
/// `data_stream`, depend on nothing but what they are written from.
#[derive(Debug, Default)]
pub struct FixedJson {
    /// `"ecs":{..},"agent":{..},"host":{..}[,"cloud":{..}]`.
    node: OnceLock<String>,
    /// `"package_policy_id":..,"package_policy_revision":..,"policy_digest":..`.
    policy: OnceLock<String>,
    /// `"data_stream":{..}`, by dataset (alerts, file, process).
    data_streams: [OnceLock<String>; 3],
    /// `event`'s fixed members, by what they are written from.
    events: Mutex<Vec<(EventKey, String)>>,
    /// Per container id. A mutex, not a `RefCell`: the facts stay `Sync`.
    containers: Mutex<HashMap<String, ContainerJson>>,
}

/// What `event`'s fixed members are written from: kind, category, type,
/// action, outcome, dataset.
type EventKey = [&'static str; 6];

impl FixedJson {
    /// Forgets the node's members: the facts they are written from
    /// (`host`, `cloud`) changed.
    pub fn forget_node(&mut self) {
        self.node = OnceLock::new();
    }

    /// Forgets the policy's members: a reload changed the policy.
    pub fn forget_policy(&mut self) {
        self.policy = OnceLock::new();
    }
}

/// How many containers' members [`FixedJson`] keeps; past it, it starts
/// over. A node runs at most a few hundred containers (110 pods by
/// default), so it rarely does; the bound keeps the entries of containers
/// long gone (each holds a copy of their metadata) from piling up.
pub const CACHED_CONTAINERS: usize = 512;

/// One container's `"container":{..},"orchestrator":{..}`, with what they
/// were written from.
#[derive(Debug)]
struct ContainerJson {
    metadata: Metadata,
    cluster_id: Option<String>,
    cluster_name: Option<String>,
    members: String,
}

impl Facts {
    /// `"ecs":{..},"agent":{..},"host":{..}[,"cloud":{..}]`, serialised once.
    fn node_members(&self) -> &str {
        self.fixed_json.node.get_or_init(|| {
            let mut fixed = Map::new();
            fixed.insert("ecs".into(), json!({"version": ECS_VERSION}));
            fixed.insert(
                "agent".into(),
                json!({"id": self.agent_id, "type": "cloud-defend", "version": self.agent_version}),
            );
            fixed.insert("host".into(), self.host.clone());
            if let Some(cloud) = &self.cloud {
                fixed.insert("cloud".into(), cloud.clone());
            }
            strip_nulls(&mut fixed);
            let text = Value::Object(fixed).to_string();
            // Without the braces: spliced into each document.
            text.get(1..text.len().saturating_sub(1)).unwrap_or_default().to_owned()
        })
    }

    /// `cloud_defend`'s policy members, serialised once per policy.
    fn policy_members(&self) -> &str {
        self.fixed_json.policy.get_or_init(|| {
            let mut j = Json::members(160);
            j.str("package_policy_id", &self.policy_id)
                .uint("package_policy_revision", u64::from(self.policy_revision))
                .str("policy_digest", &self.policy_digest);
            j.finish()
        })
    }

    /// `"data_stream":{..}` of the dataset `full` (`cloud_defend.alerts`,
    /// `.file`, `.process`), serialised once.
    fn data_stream_members(&self, full: &'static str) -> &str {
        let slot = match full {
            "cloud_defend.alerts" => 0,
            "cloud_defend.file" => 1,
            _ => 2,
        };
        let Some(cell) = self.fixed_json.data_streams.get(slot) else { return "" };
        cell.get_or_init(|| {
            let mut j = Json::members(96);
            j.object("data_stream").str("type", "logs").str("dataset", full).str("namespace", &self.namespace).close();
            j.finish()
        })
    }

    /// Appends `event`'s fixed members of `event` to `j`: copied from the
    /// cache, or written and cached.
    fn event_members(&self, j: &mut Json, event: &Event, full_dataset: &'static str) {
        let key: EventKey =
            [event.kind, event.category, event.kind_type, event.action, event.outcome.unwrap_or(""), full_dataset];
        let mut cache = self.fixed_json.events.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, members)) = cache.iter().find(|(k, _)| *k == key) {
            j.raw_members(members);
            return;
        }
        let mut members = Json::members(192);
        members
            .str("kind", event.kind)
            .strs("category", &[event.category])
            .strs("type", &[event.kind_type])
            .str("action", event.action)
            .opt_str("outcome", event.outcome)
            .str("dataset", full_dataset)
            .str("module", "cloud_defend");
        let members = members.finish();
        j.raw_members(&members);
        // A few dozen combinations at most; the bound is a guard.
        if cache.len() < 256 {
            cache.push((key, members));
        }
    }

    /// Appends `"container":{..},"orchestrator":{..}` of `container` to
    /// `j`: copied from the cache while current, else written and cached.
    fn container_members(&self, j: &mut Json, container: &Metadata) {
        let mut cache = self.fixed_json.containers.lock().unwrap_or_else(PoisonError::into_inner);
        let current = cache.get(&container.id).filter(|cached| {
            cached.metadata == *container
                && cached.cluster_id == self.cluster_id
                && cached.cluster_name == self.cluster_name
        });
        if let Some(cached) = current {
            j.raw_members(&cached.members);
            return;
        }
        let mut members = Json::members(1024);
        container_fields(&mut members, self, container);
        let members = members.finish();
        j.raw_members(&members);
        if cache.len() >= CACHED_CONTAINERS {
            cache.clear();
        }
        let cached = ContainerJson {
            metadata: container.clone(),
            cluster_id: self.cluster_id.clone(),
            cluster_name: self.cluster_name.clone(),
            members,
        };
        cache.insert(container.id.clone(), cached);
    }
}

/// A process's program members as the documents write them, kept in the
/// process ([`Process::ecs_json`], which the process cache empties at an
/// exec) and copied into each document; its identity's members are kept
/// apart ([`Process::ecs_identity`]), as an exec keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessJson {
    /// `args`, `args_count`, `command_line`, `working_directory`.
    program: String,
    /// `"previous":[..]`; empty when the process ran nothing before.
    previous: String,
}

impl ProcessJson {
    /// The program members of `process`.
    fn new(process: &Process) -> ProcessJson {
        let mut j = Json::members(512);
        j.strs("args", &process.args).uint("args_count", process.args.len() as u64);
        if !process.args.is_empty() {
            j.str("command_line", &command_line(&process.args));
        }
        j.opt_str("working_directory", process.working_directory.as_deref());
        let mut previous = Json::members(if process.previous.is_empty() { 0 } else { 256 });
        if !process.previous.is_empty() {
            previous.array("previous");
            for exec in &process.previous {
                previous.open().str("executable", &exec.executable).all_strs("args", &exec.args).close();
            }
            previous.close_array();
        }
        ProcessJson { program: j.finish(), previous: previous.finish() }
    }

    /// The program members of `process`, written on first use.
    fn of(process: &Process) -> &ProcessJson {
        process.ecs_json.get_or_init(|| ProcessJson::new(process))
    }
}

/// `entity_id`, `start`, `user.id`, `group.id` of `process` (whose
/// `entity_id` and `start` take the agent id and the boot's wall-clock
/// time from `facts`), written on first use.
fn identity<'p>(facts: &Facts, process: &'p Process) -> &'p str {
    process.ecs_identity.get_or_init(|| {
        let start_ns = facts.boot_epoch_ns.saturating_add(process.start_boot_ns);
        let mut j = Json::members(160);
        j.str("entity_id", &entity_id(&facts.agent_id, process.pid, start_ns / 1_000_000_000))
            .str("start", Stamp::new(start_ns).as_str());
        j.object("user").str("id", Decimal::new(process.uid).as_str()).close();
        j.object("group").str("id", Decimal::new(process.gid).as_str()).close();
        j.finish()
    })
}

/// A decision, what became of it, and what its documents describe.
pub struct Report<'a> {
    /// The decision.
    pub decision: &'a Decision,
    /// The names of the selectors it matched.
    pub matched: &'a [String],
    /// What became of the operation.
    pub outcome: Outcome,
    /// The process the documents describe: the actor of a file operation;
    /// an exec's new program (the program refused, for an exec that did
    /// not happen); a fork's new process (the forker, for a fork that did
    /// not happen).
    pub process: &'a Process,
    /// Its ancestors in the container, parent first.
    pub ancestors: &'a [&'a Process],
    /// The container's metadata, when registered.
    pub container: Option<&'a Metadata>,
    /// The names of the process's user and group, as its container knows
    /// them.
    pub names: &'a Names,
    /// When the documents are made: wall-clock nanoseconds since the epoch
    /// (`event.created`).
    pub created_ns: u64,
}

/// A process's end, for its `end` document.
pub struct Ending<'a> {
    /// The exit.
    pub exit: &'a Exit,
    /// The process, as the cache has it.
    pub process: &'a Process,
    /// Its ancestors in the container, parent first.
    pub ancestors: &'a [&'a Process],
    /// The container's metadata, when registered.
    pub container: Option<&'a Metadata>,
    /// The names of its user and group.
    pub names: &'a Names,
    /// When the document is made (wall clock, ns).
    pub created_ns: u64,
}

/// `event.category`, `event.action` and `event.type` of a decision's
/// operation, by its hook as the original's tables list them: a write-open
/// is `open` (`change`), a rename `rename`, a link `link`, a chmod or a
/// truncate `modification` (`change`). Hooks the original's tables do not
/// list take the nearest of its values: an access ACL set (`inode_set_acl`,
/// `inode_setxattr`) is a chmod by other means, `modification`; a symbolic
/// link made, a mount's names covered or brought, and a hook this build
/// does not know are named by the operation: `creation`, `modification`,
/// `deletion`.
pub fn ecs_event(decision: &Decision) -> (&'static str, &'static str, &'static str) {
    let (by_operation, kind_type) = match decision.operation {
        Operation::Exec | Operation::ExecMemFd => return ("process", "exec", "start"),
        Operation::Fork => return ("process", "fork", "start"),
        // ECS's network category, with Elastic Defend's action names for
        // an outgoing connection. No record of these reaches the runtime
        // yet: the kernel decides no network events (`D4C0044`).
        Operation::Connect | Operation::SendTo => return ("network", "connection_attempted", "start"),
        Operation::Bind => return ("network", "bind", "info"),
        Operation::Listen => return ("network", "listen", "start"),
        Operation::CreateExecutable | Operation::CreateFile => ("creation", "creation"),
        Operation::ModifyExecutable | Operation::ModifyFile => ("modification", "change"),
        Operation::DeleteFile => ("deletion", "deletion"),
    };
    match decision.task.hook {
        Hook::FileOpen => ("file", "open", kind_type),
        Hook::PathRename => ("file", "rename", kind_type),
        Hook::PathLink => ("file", "link", kind_type),
        Hook::PathChmod | Hook::PathTruncate | Hook::InodeSetAcl | Hook::InodeSetxattr => {
            ("file", "modification", "change")
        }
        Hook::PathMknod
        | Hook::PathUnlink
        | Hook::PathSymlink
        | Hook::SbMount
        | Hook::MoveMount
        | Hook::BprmCheckSecurity
        | Hook::TaskAlloc
        | Hook::SchedProcessFork
        | Hook::SchedProcessExec
        | Hook::SchedProcessExit
        | Hook::SysExitSetsid
        | Hook::SysExitExecve
        | Hook::SysExitExecveat
        | Hook::Unknown(_) => ("file", by_operation, kind_type),
    }
}

/// The documents of a decision: none when its actions ask for none.
pub fn decision_documents(facts: &Facts, report: &Report<'_>) -> Vec<Document> {
    let d = report.decision;
    let wants_documents = d.actions.contains(Actions::LOG) || d.actions.contains(Actions::ALERT);
    if !wants_documents {
        return Vec::new();
    }
    let (category, action, kind_type) = ecs_event(d);
    let (completion, errno) = match report.outcome {
        Outcome::Happened { hook, ktime_ns, .. } => (Some((hook, ktime_ns)), None),
        Outcome::Failed { hook, errno } => (hook.map(|h| (h, d.task.ktime_ns)), errno),
        _ => (None, None),
    };
    // The time the event happened: an exec's or a fork's when it did.
    let at = completion.map_or(d.task.ktime_ns, |(_, t)| t);
    let mut j = Json::with_capacity(body_capacity(facts));
    common(&mut j, facts, report.process, report.ancestors, report.container, at, None);
    people(&mut j, report.process, report.names);
    if category == "file" {
        file_fields(&mut j, &d.path, d.mode, d.file_type);
    }
    // The hooks the event was seen at: the decision's, then the one that
    // said what became of it.
    let mut hooks = [""; 2];
    let mut seen = 0;
    for hook in [Some(d.task.hook), completion.map(|(h, _)| h)].into_iter().flatten() {
        if let Some(point) = hook.point().filter(|p| !hooks.contains(p)) {
            if let Some(slot) = hooks.get_mut(seen) {
                *slot = point;
                seen += 1;
            }
        }
    }
    j.object("cloud_defend")
        .str("operation", d.operation.name())
        .strs("matched_selectors", report.matched)
        .strs("hook_point", hooks.get(..seen).unwrap_or_default());
    policy_fields(&mut j, facts);
    if d.truncated {
        j.bool("path_truncated", true);
    }
    if d.outside {
        j.bool("path_outside", true);
    }
    if d.task.pending {
        j.bool("container_pending", true);
    }
    if d.fileless {
        j.bool("fileless", true);
    }
    if d.actions.contains(Actions::BLOCK) {
        j.bool("blocked", d.denied);
    }
    if let Some(errno) = errno {
        j.num("errno", errno);
    }
    j.close();
    // Written once; each document adds its own `event` and `data_stream`
    // (the alert and the log of one decision differ only there).
    let mut shared = j.finish();
    let (kind_type, outcome) = match report.outcome {
        Outcome::Refused => ("denied", "failure"),
        Outcome::Failed { .. } => (kind_type, "failure"),
        Outcome::Unconfirmed => (kind_type, "unknown"),
        Outcome::Decided | Outcome::Happened { .. } => (kind_type, "success"),
    };
    let id_key = Key::Decision(d);
    let mut documents = Vec::with_capacity(2);
    let wanted = [(Actions::ALERT, Class::Alert, "alerts", "alert"), (Actions::LOG, Class::Log, category, "event")];
    let mut wanted = wanted.into_iter().filter(|(bit, ..)| d.actions.contains(*bit)).peekable();
    while let Some((_, class, dataset, kind)) = wanted.next() {
        let event = Event { kind, category, kind_type, action, outcome: Some(outcome), created_ns: report.created_ns };
        // The last document takes the shared text, the others a copy.
        let text = if wanted.peek().is_none() {
            std::mem::take(&mut shared)
        } else {
            let mut copy = String::with_capacity(shared.len() + finish_room(facts));
            copy.push_str(&shared);
            copy
        };
        documents.push(finish(facts, &id_key, text, &event, class, dataset));
    }
    documents
}

/// The `end` document of a process whose start was logged: to the process
/// log stream.
pub fn end_document(facts: &Facts, ending: &Ending<'_>) -> Document {
    let task = &ending.exit.task;
    let mut j = Json::with_capacity(body_capacity(facts));
    common(&mut j, facts, ending.process, ending.ancestors, ending.container, task.ktime_ns, Some(ending.exit.code));
    people(&mut j, ending.process, ending.names);
    let hooks: Vec<&str> = task.hook.point().into_iter().collect();
    j.object("cloud_defend").strs("hook_point", &hooks);
    policy_fields(&mut j, facts);
    j.close();
    let event = Event {
        kind: "event",
        category: "process",
        kind_type: "end",
        action: "end",
        outcome: None,
        created_ns: ending.created_ns,
    };
    finish(facts, &Key::End(task.ktime_ns, task.pid), j.finish(), &event, Class::Log, "process")
}

/// What distinguishes one document of a decision from another.
struct Event {
    kind: &'static str,
    category: &'static str,
    kind_type: &'static str,
    action: &'static str,
    outcome: Option<&'static str>,
    created_ns: u64,
}

fn policy_fields(j: &mut Json, facts: &Facts) {
    j.raw_members(facts.policy_members());
}

/// Opens the document and writes `@timestamp` (boot-clock `at`), the
/// described `process` with its relatives (`exit_code`: an end's), and the
/// container's members.
fn common(
    j: &mut Json,
    facts: &Facts,
    process: &Process,
    ancestors: &[&Process],
    container: Option<&Metadata>,
    at: u64,
    exit_code: Option<i32>,
) {
    j.open().str("@timestamp", timestamp(facts, at).as_str());
    j.object("process");
    process_fields(j, facts, process);
    j.raw_members(&ProcessJson::of(process).previous);
    if let Some(code) = exit_code {
        j.num("exit_code", code).str("end", timestamp(facts, at).as_str());
    }
    let relatives = [
        ("parent", ancestors.first().copied()),
        ("session_leader", ancestors.iter().copied().find(|a| a.pid == process.sid)),
        ("group_leader", ancestors.iter().copied().find(|a| a.pid == process.pgid)),
        // The process is its own entry leader when the cache has no
        // ancestor of it in the container.
        ("entry_leader", Some(ancestors.last().copied().unwrap_or(process))),
    ];
    for (name, relative) in relatives {
        let Some(relative) = relative else { continue };
        j.object(name);
        process_fields(j, facts, relative);
        j.bool("same_as_process", relative.pid == process.pid);
        if name == "entry_leader" {
            j.object("entry_meta").str("type", "container").close();
        }
        j.close();
    }
    j.close();
    if let Some(container) = container {
        facts.container_members(j, container);
    }
}

/// The top-level `user` and `group`: the described process's ids, and
/// their names as its container knows them.
fn people(j: &mut Json, process: &Process, names: &Names) {
    let write = || {
        let mut j = Json::members(96);
        j.object("user").str("id", Decimal::new(process.uid).as_str()).opt_str("name", names.user.as_deref()).close();
        j.object("group").str("id", Decimal::new(process.gid).as_str()).opt_str("name", names.group.as_deref()).close();
        j.finish()
    };
    // Kept in the process, while written with the same names.
    let (cached_names, cached) = process.ecs_people.get_or_init(|| (names.clone(), write()));
    if cached_names == names {
        j.raw_members(cached);
    } else {
        j.raw_members(&write());
    }
}
/// `container.*` and `orchestrator.*` of `container` (an object is open):
/// `container.image.name` is the image's bare name (`nginx`), as the
/// original writes it.
fn container_fields(j: &mut Json, facts: &Facts, container: &Metadata) {
    let (image_name, tag) = match &container.image {
        Some(image) => {
            let (_, name, tag) = d4c_artifact::event::split_image(image);
            (Some(name), tag)
        }
        None => (None, None),
    };
    j.object("container").str("id", &container.id).opt_str("name", container.name.as_deref());
    j.opt_str("runtime", container.runtime);
    if image_name.is_some() || tag.is_some() {
        j.object("image").opt_str("name", image_name.as_deref()).opt_str("tag", tag.as_deref()).close();
    }
    j.close();
    j.object("orchestrator").str("type", "kubernetes");
    if facts.cluster_id.is_some() || facts.cluster_name.is_some() {
        j.object("cluster")
            .opt_str("id", facts.cluster_id.as_deref())
            .opt_str("name", facts.cluster_name.as_deref())
            .close();
    }
    j.opt_str("namespace", container.namespace.as_deref());
    let labels: Vec<String> = container.labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let annotations: Vec<String> = container.pod_annotations.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    j.object("resource")
        .str("type", "pod")
        .opt_str("name", container.pod_name.as_deref())
        .opt_str("id", container.pod_uid.as_deref())
        .strs("ip", &container.pod_ips)
        .strs("label", &labels)
        .strs("annotation", &annotations);
    if let Some(parent) = &container.parent_type {
        j.object("parent").str("type", parent).close();
    }
    j.close().close();
}

/// `process.*` members of one process (the object is open): the same for
/// the described process and its relatives.
fn process_fields(j: &mut Json, facts: &Facts, process: &Process) {
    j.uint("pid", u64::from(process.pid))
        .str("name", &process.name)
        .opt_str("executable", process.executable.as_deref());
    j.raw_members(&ProcessJson::of(process).program).raw_members(identity(facts, process));
    j.bool("interactive", process.interactive);
}

/// `process.entity_id` as the original builds it: base64 of
/// `<agent.id>-<pid>-<start time in Unix seconds>`.
pub fn entity_id(agent_id: &str, pid: u32, start_unix_s: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{agent_id}-{pid}-{start_unix_s}"))
}

/// The bytes an argument may hold and be written unquoted in
/// [`command_line`]: letters, digits and `-_./=:,+@%`.
// The index is below 256 (and `get_mut` is not const).
#[allow(clippy::indexing_slicing)]
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'_' | b'.' | b'/' | b'=' | b':' | b',' | b'+' | b'@' | b'%');
        b += 1;
    }
    table
};

/// `process.command_line`: the arguments joined by spaces, each quoted
/// (POSIX shell single quotes) when it holds anything a shell would split
/// or expand, so that the line reads back as the same arguments.
pub fn command_line(args: &[String]) -> String {
    let mut line = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let plain = !arg.is_empty() && arg.bytes().all(|b| PLAIN.get(usize::from(b)).copied().unwrap_or(false));
        if plain {
            line.push_str(arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', "'\\''"));
            line.push('\'');
        }
    }
    line
}

/// `file.path`, `file.name`, `file.extension`, `file.mode` (octal text, as
/// ECS writes it: `0644`), and `file.type: dir` for a directory's event.
fn file_fields(j: &mut Json, path: &str, mode: Option<u32>, file_type: FileType) {
    let directory = file_type == FileType::Directory;
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').filter(|(stem, ext)| !stem.is_empty() && !ext.is_empty()).map(|(_, e)| e);
    let mode = mode.map(Octal::new);
    j.object("file")
        .str("path", path)
        .str("name", name)
        .opt_str("extension", extension.filter(|_| !directory))
        .opt_str("mode", mode.as_ref().map(Octal::as_str))
        .opt_str("type", directory.then_some("dir"))
        .close();
}

/// Room for what [`finish`] appends to the shared members (the node's
/// members, `event`, `data_stream`): reserved up front, so that a body is
/// not copied again as it grows. An estimate; past it the body just grows.
/// The bytes to reserve for a document's body before writing it: the
/// last body's shared part with some room, and [`finish_room`]. Documents
/// of one node are alike in size, so one allocation holds almost every
/// body and none holds twice what it needs (a fixed 4 KiB held 2 KB
/// bodies: twice the memory in the queue, twice the pages to fault).
fn body_capacity(facts: &Facts) -> usize {
    let shared = LAST_SHARED_BYTES.load(Ordering::Relaxed).clamp(1024, 64 * 1024);
    shared + shared / 8 + finish_room(facts)
}

/// The length of the shared part of the last body written (a hint: any
/// value is safe, a wrong one only costs a reallocation).
static LAST_SHARED_BYTES: AtomicUsize = AtomicUsize::new(2048);

fn finish_room(facts: &Facts) -> usize {
    facts.node_members().len() + 448 + 2 * facts.namespace.len()
}

/// One document: the `shared` members (an open object), its `event` (with
/// its id, made from `key` and the data stream), the data stream, and the
/// node's fixed fields.
fn finish(facts: &Facts, key: &Key<'_>, shared: String, event: &Event, class: Class, dataset: &str) -> Document {
    LAST_SHARED_BYTES.store(shared.len(), Ordering::Relaxed);
    let id = document_id(facts, key, dataset);
    let full_dataset = match dataset {
        "alerts" => "cloud_defend.alerts",
        "file" => "cloud_defend.file",
        _ => "cloud_defend.process",
    };
    let stream = ["logs-", full_dataset, "-", &facts.namespace].concat();
    let mut shared = shared;
    shared.reserve(finish_room(facts));
    // `shared` is an open object with members: go on writing into it.
    let mut j = Json::resume(shared);
    j.raw_members(facts.node_members());
    j.object("event");
    facts.event_members(&mut j, event, full_dataset);
    j.str("created", Stamp::new(event.created_ns).as_str()).str("id", &id).close();
    j.raw_members(facts.data_stream_members(full_dataset));
    j.close();
    let body = j.finish().into_bytes();
    #[cfg(test)]
    crate::fields::assert_conforms(&body);
    Document { stream, id, class, body }
}

/// What identifies an event among all of a node's boot.
enum Key<'a> {
    /// A decision: its time, its thread, and which of its syscall's
    /// events it is.
    Decision(&'a Decision),
    /// A process's end: its time and pid.
    End(u64, u32),
}

/// A document id unique per node boot, event and data stream, and the
/// same for the same event every time.
fn document_id(facts: &Facts, key: &Key<'_>, dataset: &str) -> String {
    let mut text = String::with_capacity(160);
    let push_number = crate::json::push_uint;
    text.push_str(&facts.agent_id);
    text.push('|');
    text.push_str(&facts.boot_id);
    text.push('|');
    match key {
        Key::Decision(d) => {
            push_number(&mut text, d.task.ktime_ns);
            text.push('|');
            push_number(&mut text, u64::from(d.task.pid));
            text.push('|');
            text.push_str(d.operation.name());
            text.push_str(match d.part {
                crate::event::Part::Only => "|Only|",
                crate::event::Part::First => "|First|",
                crate::event::Part::Later => "|Later|",
            });
            text.push(if d.denied { '1' } else { '0' });
            text.push('|');
            text.push(if d.audit { '1' } else { '0' });
        }
        Key::End(ktime, pid) => {
            push_number(&mut text, *ktime);
            text.push('|');
            push_number(&mut text, u64::from(*pid));
            text.push_str("|end");
        }
    }
    text.push('|');
    text.push_str(dataset);
    let digest = d4c_artifact::sha256(text.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.get(..15).unwrap_or_default())
}

/// RFC 3339 UTC with milliseconds, from a boot-time stamp.
pub fn timestamp(facts: &Facts, boot_ns: u64) -> Stamp {
    Stamp::new(facts.boot_epoch_ns.saturating_add(boot_ns))
}

/// RFC 3339 UTC with milliseconds (`1970-01-01T00:00:00.000Z`).
pub fn format_unix_ns(ns: u64) -> String {
    Stamp::new(ns).as_str().to_owned()
}

/// A time as RFC 3339 UTC text with milliseconds, on the stack: a
/// document writes two or three, and none needs a heap string.
pub struct Stamp([u8; 24]);

impl Stamp {
    /// `ns`, wall-clock nanoseconds since the epoch.
    pub fn new(ns: u64) -> Stamp {
        let secs = ns / 1_000_000_000;
        let millis = (ns / 1_000_000) % 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Civil from days (Howard Hinnant's algorithm), for days since 1970.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // Four digits of year suffice: a u64 of nanoseconds ends in 2554.
        let year = u64::try_from(year).unwrap_or(0);
        let (month, day) = (month as u64, day as u64);
        let mut text = *b"0000-00-00T00:00:00.000Z";
        let pairs = [
            (0, year / 100),
            (2, year % 100),
            (5, month),
            (8, day),
            (11, rem / 3600),
            (14, (rem / 60) % 60),
            (17, rem % 60),
            (20, millis / 10),
        ];
        for (at, pair) in pairs {
            if let Some([tens, ones]) = text.get_mut(at..at + 2) {
                (*tens, *ones) = (digit(pair / 10), digit(pair));
            }
        }
        if let Some(last) = text.get_mut(22) {
            *last = digit(millis);
        }
        Stamp(text)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// `n` in decimal, on the stack.
struct Decimal([u8; 10], usize);

impl Decimal {
    fn new(mut n: u32) -> Decimal {
        let mut buf = [b'0'; 10];
        let mut at = buf.len();
        loop {
            at -= 1;
            if let Some(d) = buf.get_mut(at) {
                *d = digit(u64::from(n));
            }
            n /= 10;
            if n == 0 || at == 0 {
                break;
            }
        }
        Decimal(buf, at)
    }

    fn as_str(&self) -> &str {
        self.0.get(self.1..).and_then(|d| std::str::from_utf8(d).ok()).unwrap_or_default()
    }
}

/// A mode's permission bits as ECS writes `file.mode`: four octal digits
/// (`0644`, `4755`), on the stack.
struct Octal([u8; 4]);

impl Octal {
    fn new(mode: u32) -> Octal {
        let m = u64::from(mode & 0o7777);
        Octal([b'0' + (m >> 9) as u8, b'0' + ((m >> 6) & 7) as u8, b'0' + ((m >> 3) & 7) as u8, b'0' + (m & 7) as u8])
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The last decimal digit of `n`.
fn digit(n: u64) -> u8 {
    b'0' + (n % 10) as u8
}

/// Removes null fields, empty lists and the objects left empty,
/// recursively: ECS documents leave unknown fields out rather than null.
fn strip_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| match v {
        Value::Object(inner) => {
            strip_nulls(inner);
            !inner.is_empty()
        }
        Value::Array(items) => !items.is_empty(),
        other => !other.is_null(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::Registry;
    use crate::event::{decode, encode, Event};
    use crate::pipeline::{Context, Pipeline};

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(format_unix_ns(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_unix_ns(1_795_000_000_123_000_000), "2026-11-18T11:06:40.123Z");
        assert_eq!(format_unix_ns(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_unix_ns(4_102_444_799_999_000_000), "2099-12-31T23:59:59.999Z");
    }

    /// Runs `records` through a pipeline (container `c1` at cgroup 9, every
    /// decision matching `allProcesses`); the documents, parsed.
    fn run(facts: &Facts, pipeline: &mut Pipeline, container: &Metadata, records: &[Record]) -> Vec<Value> {
        let mut registry = Registry::default();
        registry.insert(9, container.clone());
        let matched: crate::inflight::Matched = vec!["allProcesses".to_owned()].into();
        let explain = |_: &Decision| matched.clone();
        let cx = Context {
            facts,
            containers: &registry,
            explain: &explain,
            audit: None,
            now_ns: 0,
            created_ns: 1_795_000_000_000_000_000,
        };
        let mut out = Vec::new();
        for record in records {
            pipeline.record(record, &cx, &mut out);
        }
        out.iter().map(|d| serde_json::from_slice(&d.body).unwrap_or_default()).collect()
    }

    use d4c_kernel_probes::probes::Record;

    fn pipeline() -> Pipeline {
        Pipeline::new(64, "/nonexistent-proc".into())
    }

    fn exec_pair(tgid: u32, exe: &str, args: &[&str]) -> [Record; 2] {
        let name = exe.rsplit('/').next().unwrap_or(exe);
        [encode::exec_decision(tgid, exe, name, args, Actions::LOG), encode::exec(tgid, exe, name, Some(args))]
    }

    #[test]
    fn cached_process_members_follow_execs_forks_and_ids() {
        let facts = Facts { agent_id: "a".into(), ..Facts::default() };
        let container = Metadata { id: "c1".into(), ..Metadata::default() };
        let mut pipeline = pipeline();
        let first = run(&facts, &mut pipeline, &container, &exec_pair(10, "/bin/x", &["x", "one"]));
        assert_eq!(first[0]["process"]["args"], json!(["x", "one"]));
        assert_eq!(first[0]["process"].get("previous"), None);
        let second = run(&facts, &mut pipeline, &container, &exec_pair(10, "/bin/x", &["x", "two"]));
        assert_eq!(second[0]["process"]["args"], json!(["x", "two"]));
        assert_eq!(second[0]["process"]["previous"], json!([{"executable": "/bin/x", "args": ["x", "one"]}]));
        let mut setuid = encode::decision(10, encode::HOOK_FILE_OPEN, Operation::ModifyFile, "/etc/x", Actions::LOG);
        (setuid.head.uid, setuid.head.gid) = (5, 6);
        let third = run(&facts, &mut pipeline, &container, &[setuid]);
        assert_eq!(
            (&third[0]["process"]["user"]["id"], &third[0]["process"]["group"]["id"]),
            (&json!("5"), &json!("6"))
        );
        assert_eq!((&third[0]["user"]["id"], &third[0]["group"]["id"]), (&json!("5"), &json!("6")));
        let fork = [
            encode::decision(10, encode::HOOK_TASK_ALLOC, Operation::Fork, "/bin/x", Actions::LOG),
            encode::lifecycle(10, encode::FORK, 11),
        ];
        let child = run(&facts, &mut pipeline, &container, &fork);
        // A fork's document describes the new process, its parent the forker.
        assert_eq!(child[0]["process"]["pid"], 11);
        assert_eq!(child[0]["process"]["parent"]["pid"], 10);
        assert_eq!(child[0]["process"]["entity_id"], json!(entity_id("a", 11, 5)));
        assert_eq!(child[0]["process"].get("previous"), None);
        assert_eq!(
            child[0]["cloud_defend"]["hook_point"],
            json!(["lsm__task_alloc", "tracepoint__sched_process_fork"])
        );
    }

    #[test]
    fn cached_container_members_follow_metadata_and_cluster() {
        let mut facts = Facts::default();
        let mut container = Metadata { id: "c1".into(), ..Metadata::default() };
        let mut pipeline = pipeline();
        let file = || [encode::decision(10, encode::HOOK_PATH_UNLINK, Operation::DeleteFile, "/x", Actions::LOG)];
        let first = run(&facts, &mut pipeline, &container, &file());
        assert_eq!(first[0]["orchestrator"]["resource"].get("label"), None);
        container.labels.insert("app".into(), "web".into());
        let second = run(&facts, &mut pipeline, &container, &file());
        assert_eq!(second[0]["orchestrator"]["resource"]["label"], json!(["app:web"]));
        facts.cluster_id = Some("k1".into());
        let third = run(&facts, &mut pipeline, &container, &file());
        assert_eq!(third[0]["orchestrator"]["cluster"]["id"], "k1");
        let other = Metadata { id: "c2".into(), name: Some("db".into()), ..Metadata::default() };
        assert_eq!(run(&facts, &mut pipeline, &other, &file())[0]["container"]["name"], "db");
        assert_eq!(run(&facts, &mut pipeline, &container, &file())[0]["container"]["id"], "c1");
    }

    #[test]
    fn image_names_are_bare_as_the_original_writes_them() {
        let facts = Facts::default();
        let mut pipeline = pipeline();
        for (image, name, tag) in [
            ("docker.io/library/nginx:1.27", "nginx", Some("1.27")),
            ("nginx", "nginx", Some("latest")),
            ("ghcr.io/acme/tools/scanner:v2", "scanner", Some("v2")),
            ("registry:5000/app@sha256:abc", "app", None),
        ] {
            let container = Metadata { id: "c1".into(), image: Some(image.into()), ..Metadata::default() };
            let file = [encode::decision(10, encode::HOOK_PATH_UNLINK, Operation::DeleteFile, "/x", Actions::LOG)];
            let doc = &run(&facts, &mut pipeline, &container, &file)[0];
            assert_eq!(doc["container"]["image"]["name"], name, "{image}");
            assert_eq!(doc["container"]["image"].get("tag").and_then(Value::as_str), tag, "{image}");
        }
    }

    #[test]
    fn file_actions_and_hook_points_follow_the_hook_as_the_seed_lists_them() {
        let facts = Facts { policy_revision: 32_767, ..Facts::default() };
        let container = Metadata { id: "c1".into(), ..Metadata::default() };
        let mut pipeline = pipeline();
        use encode::*;
        let cases = [
            (HOOK_PATH_MKNOD, Operation::CreateExecutable, "creation", "creation", "lsm__path_mknod"),
            (HOOK_FILE_OPEN, Operation::ModifyFile, "open", "change", "lsm__file_open"),
            (HOOK_FILE_OPEN, Operation::CreateFile, "open", "creation", "lsm__file_open"),
            (HOOK_PATH_TRUNCATE, Operation::ModifyExecutable, "modification", "change", "lsm__path_truncate"),
            (HOOK_PATH_CHMOD, Operation::CreateExecutable, "modification", "change", "lsm__path_chmod"),
            (HOOK_PATH_LINK, Operation::CreateFile, "link", "creation", "lsm__path_link"),
            (HOOK_PATH_UNLINK, Operation::DeleteFile, "deletion", "deletion", "lsm__path_unlink"),
            (HOOK_PATH_RENAME, Operation::DeleteFile, "rename", "deletion", "lsm__path_rename"),
            (HOOK_PATH_RENAME, Operation::ModifyFile, "rename", "change", "lsm__path_rename"),
            // The hooks the seed's tables do not list: the nearest of its
            // values (runtime/README.md).
            (HOOK_PATH_SYMLINK, Operation::CreateExecutable, "creation", "creation", "lsm__path_symlink"),
            (HOOK_SB_MOUNT, Operation::DeleteFile, "deletion", "deletion", "lsm__sb_mount"),
            (HOOK_SB_MOUNT, Operation::CreateExecutable, "creation", "creation", "lsm__sb_mount"),
            (HOOK_MOVE_MOUNT, Operation::CreateFile, "creation", "creation", "lsm__move_mount"),
            (HOOK_INODE_SET_ACL, Operation::CreateExecutable, "modification", "change", "lsm__inode_set_acl"),
            (HOOK_INODE_SETXATTR, Operation::ModifyFile, "modification", "change", "lsm__inode_setxattr"),
        ];
        for (hook, operation, action, kind_type, point) in cases {
            let mut record = decision(10, hook, operation, "/etc/app.conf", Actions::LOG);
            record.head.mode = 0o100640;
            let doc = &run(&facts, &mut pipeline, &container, &[record])[0];
            assert_eq!(doc["event"]["action"], action, "{point} {operation:?}");
            assert_eq!(doc["event"]["type"], json!([kind_type]), "{point} {operation:?}");
            assert_eq!(doc["event"]["category"], json!(["file"]));
            assert_eq!(doc["cloud_defend"]["hook_point"], json!([point]));
            assert_eq!(doc["file"]["mode"], "0640");
            assert_eq!(doc["cloud_defend"]["package_policy_revision"], 32_767);
        }
        // A hook this build does not know: its document is made, by the
        // operation alone, and says no hook point.
        let unknown = decision(10, 9_999, Operation::CreateFile, "/mnt/new", Actions::LOG);
        let doc = &run(&facts, &mut pipeline, &container, &[unknown])[0];
        assert_eq!((&doc["event"]["action"], &doc["event"]["type"]), (&json!("creation"), &json!(["creation"])));
        assert_eq!(doc["cloud_defend"].get("hook_point"), None);
    }

    /// Issue 12: a write-open of an existing file was `event.action:
    /// modification`; the original writes `open` (`event.type: change`,
    /// hook `lsm__file_open`), which the rules on open events look for.
    #[test]
    fn regression_write_open_is_event_action_open() {
        let facts = Facts::default();
        let container = Metadata { id: "c1".into(), ..Metadata::default() };
        let mut record =
            encode::decision(10, encode::HOOK_FILE_OPEN, Operation::ModifyFile, "/etc/passwd", Actions::ALERT);
        record.head.flags |= encode::DENIED;
        record.head.actions = u32::from(Actions::ALERT.union(Actions::BLOCK).bits());
        let docs = run(&facts, &mut pipeline(), &container, &[record]);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["event"]["action"], "open");
        assert_eq!(docs[0]["event"]["type"], json!(["denied"]));
        assert_eq!(docs[0]["event"]["outcome"], "failure");
        assert_eq!(docs[0]["cloud_defend"]["blocked"], true);
        let allowed = encode::decision(10, encode::HOOK_FILE_OPEN, Operation::ModifyFile, "/etc/motd", Actions::LOG);
        let docs = run(&facts, &mut pipeline(), &container, &[allowed]);
        assert_eq!((&docs[0]["event"]["action"], &docs[0]["event"]["type"]), (&json!("open"), &json!(["change"])));
    }

    #[test]
    fn directory_events_say_dir_and_paths_outside_the_root_say_so() {
        let facts = Facts::default();
        let container = Metadata { id: "c1".into(), ..Metadata::default() };
        // A mount brings a directory's worth of names: `file.type: dir`,
        // no extension (a directory's name has none).
        let mut mount =
            encode::decision(10, encode::HOOK_SB_MOUNT, Operation::CreateExecutable, "/usr/lib.d", Actions::LOG);
        mount.head.flags |= encode::DIRECTORY | encode::FIRST;
        mount.head.mode = 0o40755;
        let doc = &run(&facts, &mut pipeline(), &container, &[mount])[0];
        assert_eq!((&doc["file"]["type"], doc["file"].get("extension")), (&json!("dir"), None));
        assert_eq!(doc["file"]["mode"], "0755");
        assert_eq!(doc["cloud_defend"].get("path_outside"), None);
        // An ACL set on a file the walk found outside the container's root
        // (a volume): the decision failed closed; both facts are written.
        let mut acl = encode::decision(10, encode::HOOK_INODE_SET_ACL, Operation::ModifyFile, "/data/x", Actions::LOG);
        acl.head.flags |= encode::OUTSIDE | encode::TRUNCATED;
        let doc = &run(&facts, &mut pipeline(), &container, &[acl])[0];
        assert_eq!(doc["file"].get("type"), None);
        assert_eq!(
            (&doc["cloud_defend"]["path_outside"], &doc["cloud_defend"]["path_truncated"]),
            (&json!(true), &json!(true))
        );
    }

    #[test]
    fn regression_top_level_user_and_group_id_and_event_created_are_written() {
        let facts = Facts::default();
        let container = Metadata { id: "c1".into(), ..Metadata::default() };
        let mut record = encode::decision(10, encode::HOOK_PATH_MKNOD, Operation::CreateFile, "/tmp/x", Actions::LOG);
        (record.head.uid, record.head.gid) = (33, 33);
        let docs = run(&facts, &mut pipeline(), &container, &[record]);
        assert_eq!(docs[0]["event"]["created"], "2026-11-18T11:06:40.000Z");
        assert_eq!((&docs[0]["user"]["id"], &docs[0]["group"]["id"]), (&json!("33"), &json!("33")));
        // The relatives say whether they are interactive.
        assert!(docs[0]["process"]["entry_leader"]["interactive"].is_boolean());
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let args: Vec<String> = ["sh", "-c", "echo 'hi' > /tmp/x", ""].iter().map(|s| s.to_string()).collect();
        assert_eq!(command_line(&args), r#"sh -c 'echo '\''hi'\'' > /tmp/x' ''"#);
    }

    #[test]
    fn entity_ids_are_base64_of_agent_pid_and_start() {
        assert_eq!(entity_id("a1", 42, 1_700_000_000), "YTEtNDItMTcwMDAwMDAwMA==");
    }

    fn file_json(path: &str, mode: Option<u32>, file_type: FileType) -> Value {
        let mut j = Json::default();
        j.open();
        file_fields(&mut j, path, mode, file_type);
        j.close();
        serde_json::from_str::<Value>(j.as_str()).unwrap_or_default()["file"].clone()
    }

    #[test]
    fn file_fields_split_name_and_extension_and_write_the_mode() {
        assert_eq!(file_json("/etc/nginx/nginx.conf", None, FileType::File)["extension"], "conf");
        assert_eq!(file_json("/usr/bin/.hidden", None, FileType::File).get("extension"), None);
        assert_eq!(file_json("/usr/bin/tool", Some(0o104755), FileType::File)["mode"], "4755");
        assert_eq!(file_json("/usr/bin/tool", Some(0o100700), FileType::File)["mode"], "0700");
        let dir = file_json("/var/lib/x.d", Some(0o40755), FileType::Directory);
        assert_eq!((dir["type"].as_str(), dir.get("extension")), (Some("dir"), None));
    }

    #[test]
    fn decoded_events_are_the_only_input() {
        // The documents are made from events; a record is decoded once.
        let record = encode::decision(10, encode::HOOK_PATH_UNLINK, Operation::DeleteFile, "/x", Actions::LOG);
        let Event::Decision(d) = decode(&record) else { panic!("not a decision") };
        assert_eq!(ecs_event(&d), ("file", "deletion", "deletion"));
    }
}
