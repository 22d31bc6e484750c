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
//! blocks.

use std::fmt::Write as _;

use base64::Engine as _;
use d4c_kernel_probes::abi::{
    ACTION_ALERT, ACTION_BLOCK, ACTION_LOG, EV_DENIED, EV_FILELESS, EV_PENDING, EV_TRUNCATED, KIND_FILE, KIND_PROCESS,
    OP_CREATE_EXECUTABLE, OP_CREATE_FILE, OP_DELETE_FILE, OP_EXEC, OP_EXEC_MEMFD, OP_FORK, OP_MODIFY_EXECUTABLE,
    OP_MODIFY_FILE, RECORD_DECISION,
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
#[derive(Debug, Clone, Default)]
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
    /// A cache of the serialised fields that never change (`ecs`, `agent`,
    /// `host`, `cloud`): leave it default; it is filled on first use.
    pub fixed_json: std::sync::OnceLock<String>,
}

impl Facts {
    /// `"ecs":{..},"agent":{..},"host":{..}[,"cloud":{..}]`, serialised once.
    fn fixed(&self) -> &str {
        self.fixed_json.get_or_init(|| {
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
        file_fields(&mut j, &path);
    }
    j.object("cloud_defend").str("operation", operation).strs("matched_selectors", subject.matched);
    policy_fields(&mut j, facts);
    if head.flags & EV_TRUNCATED != 0 {
        j.bool("path_truncated", true);
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
    let shared = j.finish();
    let types = if denied { "denied" } else { types };
    let dataset_of_log = if category == "file" { "file" } else { "process" };
    let mut documents = Vec::new();
    let wanted = [(ACTION_ALERT, Class::Alert, "alerts", "alert"), (ACTION_LOG, Class::Log, dataset_of_log, "event")];
    for (bit, class, dataset, kind) in wanted {
        if head.actions & bit == 0 {
            continue;
        }
        let event = Event {
            kind,
            category,
            kind_type: types,
            action,
            outcome: Some(if denied { "failure" } else { "success" }),
        };
        documents.push(finish(facts, subject.record, shared.clone(), &event, class, dataset));
    }
    documents
}

/// The `end` document of a process whose start was logged: to the process
/// log stream.
pub fn end_document(facts: &Facts, subject: &Subject<'_>) -> Document {
    let mut j = Json::with_capacity(4096);
    common(&mut j, facts, subject, None);
    j.object("cloud_defend");
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
    if let Some(previous) = (!process.previous.is_empty()).then_some(&process.previous) {
        j.raw_members(&previous_json(previous));
    }
    j.bool("interactive", subject.record.head.flags & d4c_kernel_probes::abi::EV_INTERACTIVE != 0);
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
}

/// `process.*` members of one process (the object is open).
fn process_fields(j: &mut Json, facts: &Facts, process: &Process, exec: Option<(&str, &str)>) {
    let ids = process.ecs_ids.get_or_init(|| {
        let start_ns = facts.boot_epoch_ns.saturating_add(process.start_boot_ns);
        (entity_id(&facts.agent_id, process.pid, start_ns / 1_000_000_000), timestamp(facts, process.start_boot_ns))
    });
    let (executable, name) = match exec {
        Some((executable, name)) => (Some(executable), name),
        None => (process.executable.as_deref(), process.name.as_str()),
    };
    j.num("pid", process.pid).str("name", name).opt_str("executable", executable);
    j.strs("args", &process.args).num("args_count", process.args.len());
    if !process.args.is_empty() {
        j.str("command_line", &command_line(&process.args));
    }
    j.opt_str("working_directory", process.working_directory.as_deref()).str("entity_id", &ids.0).str("start", &ids.1);
    j.object("user").str("id", &process.uid.to_string()).close();
    j.object("group").str("id", &process.gid.to_string()).close();
}

/// `"previous":[{"executable":..,"args":[..]},..]`.
fn previous_json(previous: &[crate::process::Exec]) -> String {
    let list: Vec<Value> = previous.iter().map(|e| json!({"executable": e.executable, "args": e.args})).collect();
    format!("\"previous\":{}", Value::Array(list))
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
fn file_fields(j: &mut Json, path: &str) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').filter(|(stem, ext)| !stem.is_empty() && !ext.is_empty()).map(|(_, e)| e);
    j.object("file").str("path", path).str("name", name).opt_str("extension", extension).close();
}

/// One document: the record's `shared` members (an open object), its
/// `event` (with its id), the data stream, and the node's fixed fields.
fn finish(facts: &Facts, record: &Record, shared: String, event: &Event<'_>, class: Class, dataset: &str) -> Document {
    let stream = format!("logs-cloud_defend.{dataset}-{}", facts.namespace);
    let id = document_id(facts, record, dataset);
    // `shared` is an open object with members: go on writing into it.
    let mut j = Json::resume(shared);
    j.raw_members(facts.fixed());
    j.object("event")
        .str("kind", event.kind)
        .strs("category", &[event.category])
        .strs("type", &[event.kind_type])
        .str("action", event.action)
        .opt_str("outcome", event.outcome)
        .str("dataset", &format!("cloud_defend.{dataset}"))
        .str("module", "cloud_defend")
        .str("id", &id)
        .close();
    j.object("data_stream")
        .str("type", "logs")
        .str("dataset", &format!("cloud_defend.{dataset}"))
        .str("namespace", &facts.namespace)
        .close();
    j.close();
    Document { stream, id, class, body: j.finish().into_bytes() }
}

/// A document id unique per node boot, record and data stream, and the
/// same for the same record every time.
fn document_id(facts: &Facts, record: &Record, dataset: &str) -> String {
    let head = &record.head;
    let mut key = String::new();
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
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, (rem / 60) % 60, rem % 60)
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
        file_fields(&mut j, path);
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
