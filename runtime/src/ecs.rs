//! ECS documents from kernel records.
//!
//! In: a decision record (or a process end), the process cache's view of
//! the acting process and its ancestors, the container's metadata, the
//! matched selectors, and the node's facts. Out: one [`Document`] per
//! action that asks for one: `log` to `logs-cloud_defend.file-<ns>` or
//! `logs-cloud_defend.process-<ns>`, `alert` to
//! `logs-cloud_defend.alerts-<ns>`, as the original's field tables list
//! them, plus `process.command_line` and d4c's own `cloud_defend.*` facts
//! (the path was cut, the container was pending).
//!
//! Invariants: the same record always gives the same documents with the
//! same ids (the ids make delivery idempotent); nothing here reads files or
//! blocks. What stays the same from one document to the next (the node's
//! members, a container's, a process's) is serialised once and copied
//! ([`FixedJson`], [`ProcessJson`]): a cached text is used only while what
//! it was written from is unchanged.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use d4c_kernel_probes::abi::{
    ACTION_ALERT, ACTION_BLOCK, ACTION_LOG, EV_DENIED, EV_DIRECTORY, EV_FILELESS, EV_OUTSIDE, EV_PENDING, EV_TRUNCATED,
    KIND_FILE, KIND_PROCESS, OP_CREATE_EXECUTABLE, OP_CREATE_FILE, OP_DELETE_FILE, OP_EXEC, OP_EXEC_MEMFD, OP_FORK,
    OP_MODIFY_EXECUTABLE, OP_MODIFY_FILE, RECORD_DECISION,
};
use d4c_kernel_probes::probes::Record;
use serde_json::{json, Map, Value};

use crate::containers::Metadata;
use crate::document::{Class, Document};
use crate::json::Json;
use crate::process::Process;

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
    /// `cloud_defend.package_policy_revision`.
    pub policy_revision: u64,
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
/// written once, from facts fixed for the daemon's life; a container's
/// members (`container`, `orchestrator`) are used only while its metadata
/// and the cluster facts equal those they were written from; at most
/// [`CACHED_CONTAINERS`] containers are kept.
#[derive(Debug, Default)]
pub struct FixedJson {
    /// `"ecs":{..},"agent":{..},"host":{..}[,"cloud":{..}]`.
    node: OnceLock<String>,
    /// Per container id. A mutex, not a `RefCell`: the facts stay `Sync`.
    containers: Mutex<HashMap<String, ContainerJson>>,
}

impl FixedJson {
    /// Forgets the node's members: the facts they are written from
    /// (`host`, `cloud`) changed.
    pub fn forget_node(&mut self) {
        self.node = OnceLock::new();
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

/// A process's members as the documents write them, kept in the process
/// ([`Process::ecs_json`], which the process cache empties whenever a
/// field written here changes) and copied into each document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessJson {
    /// `args` to `group`: `process.*` but for `pid`, `name` and
    /// `executable`, which an exec's decision takes from its record.
    fields: String,
    /// `"previous":[..]`; empty when the process ran nothing before.
    previous: String,
}

impl ProcessJson {
    /// The members of `process`, whose `entity_id` and `start` take the
    /// agent id and the boot's wall-clock time from `facts`.
    fn new(facts: &Facts, process: &Process) -> ProcessJson {
        let start_ns = facts.boot_epoch_ns.saturating_add(process.start_boot_ns);
        let mut j = Json::members(512);
        j.strs("args", &process.args).num("args_count", process.args.len());
        if !process.args.is_empty() {
            j.str("command_line", &command_line(&process.args));
        }
        j.opt_str("working_directory", process.working_directory.as_deref())
            .str("entity_id", &entity_id(&facts.agent_id, process.pid, start_ns / 1_000_000_000))
            .str("start", &format_unix_ns(start_ns));
        j.object("user").str("id", &process.uid.to_string()).close();
        j.object("group").str("id", &process.gid.to_string()).close();
        let mut previous = Json::members(0);
        if !process.previous.is_empty() {
            previous.array("previous");
            for exec in &process.previous {
                previous.open().str("executable", &exec.executable).all_strs("args", &exec.args).close();
            }
            previous.close_array();
        }
        ProcessJson { fields: j.finish(), previous: previous.finish() }
    }

    /// The members of `process`, written on first use.
    fn of<'p>(facts: &Facts, process: &'p Process) -> &'p ProcessJson {
        process.ecs_json.get_or_init(|| ProcessJson::new(facts, process))
    }
}

/// What a record is about, for the documents.
pub struct Subject<'a> {
    /// The record.
    pub record: &'a Record,
    /// The acting process (for a fork, the parent).
    pub process: &'a Process,
    /// Its ancestors in the container, parent first.
    pub ancestors: &'a [&'a Process],
    /// The container's metadata, when registered.
    pub container: Option<&'a Metadata>,
    /// The names of the matched selectors.
    pub matched: &'a [String],
}

/// The documents for a decision record: none when its actions ask for none.
pub fn decision_documents(facts: &Facts, subject: &Subject<'_>) -> Vec<Document> {
    let head = &subject.record.head;
    if head.record != RECORD_DECISION {
        return Vec::new();
    }
    let denied = head.flags & EV_DENIED != 0;
    let (category, action, types) = match (head.kind, head.op) {
        (KIND_FILE, OP_CREATE_EXECUTABLE | OP_CREATE_FILE) => ("file", "creation", "creation"),
        (KIND_FILE, OP_MODIFY_EXECUTABLE | OP_MODIFY_FILE) => ("file", "modification", "change"),
        (KIND_FILE, OP_DELETE_FILE) => ("file", "deletion", "deletion"),
        (KIND_FILE, OP_EXEC_MEMFD) => ("process", "exec", "start"),
        (KIND_PROCESS, OP_FORK) => ("process", "fork", "start"),
        (KIND_PROCESS, OP_EXEC) => ("process", "exec", "start"),
        _ => return Vec::new(),
    };
    let operation = match (head.kind, head.op) {
        (KIND_FILE, OP_CREATE_EXECUTABLE) => "createExecutable",
        (KIND_FILE, OP_MODIFY_EXECUTABLE) => "modifyExecutable",
        (KIND_FILE, OP_CREATE_FILE) => "createFile",
        (KIND_FILE, OP_MODIFY_FILE) => "modifyFile",
        (KIND_FILE, OP_DELETE_FILE) => "deleteFile",
        (KIND_FILE, _) => "execMemFd",
        (_, OP_FORK) => "fork",
        _ => "exec",
    };
    let path = subject.record.path_text();
    // The exec's own executable, which the process cache learns only after
    // the exec (and never, when it was refused).
    let name = subject.record.name_text();
    let exec = (head.kind == KIND_PROCESS && head.op == OP_EXEC).then_some((path.as_str(), name.as_str()));
    let mut j = Json::with_capacity(4096);
    common(&mut j, facts, subject, exec);
    if head.kind == KIND_FILE && head.op != OP_EXEC_MEMFD {
        file_fields(&mut j, &path, head.flags & EV_DIRECTORY != 0);
    }
    j.object("cloud_defend")
        .str("operation", operation)
        .strs("matched_selectors", subject.matched)
        .opt_str("hook_point", subject.record.hook_point());
    policy_fields(&mut j, facts);
    if head.flags & EV_TRUNCATED != 0 {
        j.bool("path_truncated", true);
    }
    if head.flags & EV_OUTSIDE != 0 {
        j.bool("path_outside", true);
    }
    if head.flags & EV_PENDING != 0 {
        j.bool("container_pending", true);
    }
    if head.flags & EV_FILELESS != 0 {
        j.bool("fileless", true);
    }
    if head.actions & ACTION_BLOCK != 0 {
        j.bool("blocked", denied);
    }
    j.close();
    // Written once; each document adds its own `event` and `data_stream`
    // (the alert and the log of one record differ only there).
    let mut shared = j.finish();
    let types = if denied { "denied" } else { types };
    let dataset_of_log = if category == "file" { "file" } else { "process" };
    let mut documents = Vec::with_capacity(2);
    let wanted = [(ACTION_ALERT, Class::Alert, "alerts", "alert"), (ACTION_LOG, Class::Log, dataset_of_log, "event")];
    let mut wanted = wanted.into_iter().filter(|(bit, ..)| head.actions & bit != 0).peekable();
    while let Some((_, class, dataset, kind)) = wanted.next() {
        let event = Event {
            kind,
            category,
            kind_type: types,
            action,
            outcome: Some(if denied { "failure" } else { "success" }),
        };
        // The last document takes the shared text, the others a copy.
        let text = if wanted.peek().is_none() {
            std::mem::take(&mut shared)
        } else {
            let mut copy = String::with_capacity(shared.len() + finish_room(facts));
            copy.push_str(&shared);
            copy
        };
        documents.push(finish(facts, subject.record, text, &event, class, dataset));
    }
    documents
}

/// The `end` document of a process whose start was logged: to the process
/// log stream.
pub fn end_document(facts: &Facts, subject: &Subject<'_>) -> Document {
    let mut j = Json::with_capacity(4096);
    common(&mut j, facts, subject, None);
    j.object("cloud_defend").opt_str("hook_point", subject.record.hook_point());
    policy_fields(&mut j, facts);
    j.close();
    let event = Event { kind: "event", category: "process", kind_type: "end", action: "end", outcome: None };
    finish(facts, subject.record, j.finish(), &event, Class::Log, "process")
}

/// What distinguishes one document of a record from another.
struct Event<'a> {
    kind: &'a str,
    category: &'a str,
    kind_type: &'a str,
    action: &'a str,
    outcome: Option<&'a str>,
}

fn policy_fields(j: &mut Json, facts: &Facts) {
    j.str("package_policy_id", &facts.policy_id)
        .num("package_policy_revision", facts.policy_revision)
        .str("policy_digest", &facts.policy_digest);
}

/// Opens the document and writes the fields every document of `subject`
/// has; `exec` overrides `process.executable` and `process.name`.
fn common(j: &mut Json, facts: &Facts, subject: &Subject<'_>, exec: Option<(&str, &str)>) {
    let process = subject.process;
    j.open().str("@timestamp", &timestamp(facts, subject.record.head.ktime_ns));
    j.object("process");
    process_fields(j, facts, process, exec);
    j.raw_members(&ProcessJson::of(facts, process).previous);
    // A file decision's record does not say whether the session has a
    // terminal (the file hooks do not look); the process cache knows.
    let head = &subject.record.head;
    let interactive = if head.record == RECORD_DECISION && head.kind == KIND_FILE {
        process.interactive
    } else {
        head.flags & d4c_kernel_probes::abi::EV_INTERACTIVE != 0
    };
    j.bool("interactive", interactive);
    if let Some(code) = process.exit_code.filter(|_| subject.record.head.op == d4c_kernel_probes::abi::LIFE_EXIT) {
        j.num("exit_code", code).str("end", &timestamp(facts, subject.record.head.ktime_ns));
    }
    let relatives = [
        ("parent", subject.ancestors.first().copied()),
        ("session_leader", subject.ancestors.iter().copied().find(|a| a.pid == process.sid)),
        ("group_leader", subject.ancestors.iter().copied().find(|a| a.pid == process.pgid)),
        // The process is its own entry leader when the cache has no
        // ancestor of it in the container.
        ("entry_leader", Some(subject.ancestors.last().copied().unwrap_or(process))),
    ];
    for (name, relative) in relatives {
        let Some(relative) = relative else { continue };
        j.object(name);
        process_fields(j, facts, relative, None);
        j.bool("same_as_process", relative.pid == process.pid);
        if name == "entry_leader" {
            j.object("entry_meta").str("type", "container").close();
        }
        j.close();
    }
    j.close();
    if let Some(container) = subject.container {
        facts.container_members(j, container);
    }
}

/// `container.*` and `orchestrator.*` of `container` (an object is open).
fn container_fields(j: &mut Json, facts: &Facts, container: &Metadata) {
    let (image_name, tag) = match &container.image {
        Some(image) => {
            let (full, _, tag) = d4c_artifact::event::split_image(image);
            (Some(full), tag)
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

/// `process.*` members of one process (the object is open); `exec`
/// overrides `executable` and `name`.
fn process_fields(j: &mut Json, facts: &Facts, process: &Process, exec: Option<(&str, &str)>) {
    let (executable, name) = match exec {
        Some((executable, name)) => (Some(executable), name),
        None => (process.executable.as_deref(), process.name.as_str()),
    };
    j.num("pid", process.pid).str("name", name).opt_str("executable", executable);
    j.raw_members(&ProcessJson::of(facts, process).fields);
}

/// `process.entity_id` as the original builds it: base64 of
/// `<agent.id>-<pid>-<start time in Unix seconds>`.
pub fn entity_id(agent_id: &str, pid: u32, start_unix_s: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{agent_id}-{pid}-{start_unix_s}"))
}

/// `process.command_line`: the arguments joined by spaces, each quoted
/// (POSIX shell single quotes) when it holds anything a shell would split
/// or expand, so that the line reads back as the same arguments.
pub fn command_line(args: &[String]) -> String {
    let mut line = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let plain = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
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

/// `file.path`, `file.name`, `file.extension`.
/// `file.*` of a file event; `directory`: the event is on a directory
/// (renamed, moved or mounted: for everything in it), `file.type: dir`.
fn file_fields(j: &mut Json, path: &str, directory: bool) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').filter(|(stem, ext)| !stem.is_empty() && !ext.is_empty()).map(|(_, e)| e);
    j.object("file")
        .str("path", path)
        .str("name", name)
        .opt_str("extension", extension.filter(|_| !directory))
        .opt_str("type", directory.then_some("dir"))
        .close();
}

/// Room for what [`finish`] appends to the shared members (the node's
/// members, `event`, `data_stream`): reserved up front, so that a body is
/// not copied again as it grows. An estimate; past it the body just grows.
fn finish_room(facts: &Facts) -> usize {
    facts.node_members().len() + 384 + 2 * facts.namespace.len()
}

/// One document: the record's `shared` members (an open object), its
/// `event` (with its id), the data stream, and the node's fixed fields.
fn finish(facts: &Facts, record: &Record, shared: String, event: &Event<'_>, class: Class, dataset: &str) -> Document {
    let id = document_id(facts, record, dataset);
    let full_dataset = ["cloud_defend.", dataset].concat();
    let stream = ["logs-", &full_dataset, "-", &facts.namespace].concat();
    let mut shared = shared;
    shared.reserve(finish_room(facts));
    // `shared` is an open object with members: go on writing into it.
    let mut j = Json::resume(shared);
    j.raw_members(facts.node_members());
    j.object("event")
        .str("kind", event.kind)
        .strs("category", &[event.category])
        .strs("type", &[event.kind_type])
        .str("action", event.action)
        .opt_str("outcome", event.outcome)
        .str("dataset", &full_dataset)
        .str("module", "cloud_defend")
        .str("id", &id)
        .close();
    j.object("data_stream")
        .str("type", "logs")
        .str("dataset", &full_dataset)
        .str("namespace", &facts.namespace)
        .close();
    j.close();
    Document { stream, id, class, body: j.finish().into_bytes() }
}

/// A document id unique per node boot, record and data stream, and the
/// same for the same record every time.
fn document_id(facts: &Facts, record: &Record, dataset: &str) -> String {
    let head = &record.head;
    let mut key = String::with_capacity(128);
    let _ = write!(
        key,
        "{}|{}|{}|{}|{}|{}|{}|{}|{dataset}",
        facts.agent_id, facts.boot_id, head.ktime_ns, head.pid, head.record, head.kind, head.op, head.flags
    );
    let digest = d4c_artifact::sha256(key.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.get(..15).unwrap_or_default())
}

/// RFC 3339 UTC with milliseconds, from a boot-time stamp.
pub fn timestamp(facts: &Facts, boot_ns: u64) -> String {
    format_unix_ns(facts.boot_epoch_ns.saturating_add(boot_ns))
}

/// RFC 3339 UTC with milliseconds (`1970-01-01T00:00:00.000Z`).
pub fn format_unix_ns(ns: u64) -> String {
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
    // Digits pushed by hand rather than `format!` (one timestamp per
    // document, on the hot path); four digits of year suffice, as a u64 of
    // nanoseconds ends in 2554.
    let year = u64::try_from(year).unwrap_or(0);
    let (month, day) = (month as u64, day as u64);
    let mut text = String::with_capacity(24);
    let pairs = [
        (year / 100, ""),
        (year % 100, "-"),
        (month, "-"),
        (day, "T"),
        (rem / 3600, ":"),
        ((rem / 60) % 60, ":"),
        (rem % 60, "."),
        (millis / 10, ""),
    ];
    for (pair, separator) in pairs {
        text.push(digit(pair / 10));
        text.push(digit(pair));
        text.push_str(separator);
    }
    text.push(digit(millis));
    text.push('Z');
    text
}

/// The last decimal digit of `n`.
fn digit(n: u64) -> char {
    char::from(b'0' + (n % 10) as u8)
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

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(format_unix_ns(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_unix_ns(1_795_000_000_123_000_000), "2026-11-18T11:06:40.123Z");
        assert_eq!(format_unix_ns(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_unix_ns(4_102_444_799_999_000_000), "2099-12-31T23:59:59.999Z");
    }

    fn record(kind: u32, op: u32, tgid: u32, args: &[&str]) -> Record {
        use d4c_kernel_probes::abi::{EventRecord, ACTION_LOG, ARGS_OFFSET, EV_ARGS};
        use zerocopy::FromZeros;
        let mut head = EventRecord::new_zeroed();
        (head.record, head.op, head.pid, head.tgid, head.ppid, head.cgroup_id) = (kind, op, tgid, tgid, 1, 9);
        head.ktime_ns = 5_000_000_000;
        let mut path = b"/bin/x".to_vec();
        if kind == RECORD_DECISION {
            (head.kind, head.actions) = (KIND_PROCESS, ACTION_LOG);
        } else if !args.is_empty() {
            head.flags = EV_ARGS;
            path.resize(ARGS_OFFSET as usize, 0);
            path.extend(args.iter().flat_map(|a| a.bytes().chain([0])));
        }
        Record { head, path }
    }

    /// The one document of a logged exec decision by `record`'s process.
    fn document(
        facts: &Facts,
        cache: &mut crate::process::ProcessCache,
        record: &Record,
        container: &Metadata,
    ) -> Value {
        let process = cache.observe(record);
        let ancestors = cache.ancestors(process.pid);
        let subject =
            Subject { record, process: &process, ancestors: &ancestors, container: Some(container), matched: &[] };
        let documents = decision_documents(facts, &subject);
        assert_eq!(documents.len(), 1);
        serde_json::from_slice(&documents[0].body).unwrap_or_default()
    }

    #[test]
    fn cached_process_members_follow_execs_forks_and_ids() {
        use d4c_kernel_probes::abi::{LIFE_EXEC, LIFE_FORK, RECORD_LIFECYCLE};
        let facts = Facts { agent_id: "a".into(), ..Facts::default() };
        let container = Metadata { id: "c1".into(), ..Metadata::default() };
        let mut cache = crate::process::ProcessCache::new(64, "/nonexistent-proc".into());
        let decision = record(RECORD_DECISION, OP_EXEC, 10, &[]);
        cache.observe(&record(RECORD_LIFECYCLE, LIFE_EXEC, 10, &["x", "one"]));
        let first = document(&facts, &mut cache, &decision, &container);
        assert_eq!(first["process"]["args"], json!(["x", "one"]));
        assert_eq!(first["process"].get("previous"), None);
        cache.observe(&record(RECORD_LIFECYCLE, LIFE_EXEC, 10, &["x", "two"]));
        let second = document(&facts, &mut cache, &decision, &container);
        assert_eq!(second["process"]["args"], json!(["x", "two"]));
        assert_eq!(second["process"]["previous"], json!([{"executable": "/bin/x", "args": ["x", "one"]}]));
        let mut setuid = decision.clone();
        (setuid.head.uid, setuid.head.gid) = (5, 6);
        let third = document(&facts, &mut cache, &setuid, &container);
        assert_eq!((&third["process"]["user"]["id"], &third["process"]["group"]["id"]), (&json!("5"), &json!("6")));
        let mut fork = record(RECORD_LIFECYCLE, LIFE_FORK, 10, &[]);
        fork.head.child_tgid = 11;
        cache.observe(&fork);
        let child = document(&facts, &mut cache, &record(RECORD_DECISION, OP_EXEC, 11, &[]), &container);
        assert_eq!(child["process"]["pid"], 11);
        assert_eq!(child["process"]["entity_id"], json!(entity_id("a", 11, 5)));
        assert_eq!(child["process"].get("previous"), None);
    }

    #[test]
    fn cached_container_members_follow_metadata_and_cluster() {
        let mut facts = Facts::default();
        let mut container = Metadata { id: "c1".into(), ..Metadata::default() };
        let mut cache = crate::process::ProcessCache::new(64, "/nonexistent-proc".into());
        let decision = record(RECORD_DECISION, OP_EXEC, 10, &[]);
        let first = document(&facts, &mut cache, &decision, &container);
        assert_eq!(first["orchestrator"]["resource"].get("label"), None);
        container.labels.insert("app".into(), "web".into());
        let second = document(&facts, &mut cache, &decision, &container);
        assert_eq!(second["orchestrator"]["resource"]["label"], json!(["app:web"]));
        facts.cluster_id = Some("k1".into());
        let third = document(&facts, &mut cache, &decision, &container);
        assert_eq!(third["orchestrator"]["cluster"]["id"], "k1");
        let other = Metadata { id: "c2".into(), name: Some("db".into()), ..Metadata::default() };
        assert_eq!(document(&facts, &mut cache, &decision, &other)["container"]["name"], "db");
        assert_eq!(document(&facts, &mut cache, &decision, &container)["container"]["id"], "c1");
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

    fn file_json(path: &str) -> Value {
        let mut j = Json::default();
        j.open();
        file_fields(&mut j, path, false);
        j.close();
        serde_json::from_str::<Value>(j.as_str()).unwrap_or_default()["file"].clone()
    }

    #[test]
    fn file_fields_split_name_and_extension() {
        assert_eq!(file_json("/etc/nginx/nginx.conf")["extension"], "conf");
        assert_eq!(file_json("/usr/bin/.hidden").get("extension"), None);
        assert_eq!(file_json("/usr/bin/tool")["name"], "tool");
    }
}
