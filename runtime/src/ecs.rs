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
    let mut base = common(facts, subject);
    let path = subject.record.path_text();
    if head.kind == KIND_FILE && head.op != OP_EXEC_MEMFD {
        insert(&mut base, "file", file_fields(&path));
    }
    if head.kind == KIND_PROCESS && head.op == OP_EXEC {
        // The exec's own executable, which the process cache learns only
        // after the exec (and never, when it was refused).
        let mut process = base.get("process").cloned().unwrap_or_else(|| json!({}));
        if let Some(p) = process.as_object_mut() {
            p.insert("executable".into(), Value::from(path.clone()));
            p.insert("name".into(), Value::from(subject.record.name_text()));
        }
        base.insert("process".into(), process);
    }
    let mut d4c = json!({
        "operation": operation,
        "matched_selectors": subject.matched,
        "package_policy_id": facts.policy_id,
        "package_policy_revision": facts.policy_revision,
        "policy_digest": facts.policy_digest,
    });
    if let Some(object) = d4c.as_object_mut() {
        if head.flags & EV_TRUNCATED != 0 {
            object.insert("path_truncated".into(), Value::Bool(true));
        }
        if head.flags & EV_PENDING != 0 {
            object.insert("container_pending".into(), Value::Bool(true));
        }
        if head.flags & EV_FILELESS != 0 {
            object.insert("fileless".into(), Value::Bool(true));
        }
        if head.actions & ACTION_BLOCK != 0 {
            object.insert("blocked".into(), Value::Bool(denied));
        }
    }
    base.insert("cloud_defend".into(), d4c);
    let types = if denied { vec!["denied"] } else { vec![types] };
    let dataset_of_log = if category == "file" { "file" } else { "process" };
    let mut documents = Vec::new();
    let wanted = [(ACTION_ALERT, Class::Alert, "alerts", "alert"), (ACTION_LOG, Class::Log, dataset_of_log, "event")];
    for (bit, class, dataset, kind) in wanted {
        if head.actions & bit == 0 {
            continue;
        }
        let mut body = base.clone();
        insert(
            &mut body,
            "event",
            json!({
                "kind": kind,
                "category": [category],
                "type": types,
                "action": action,
                "outcome": if denied { "failure" } else { "success" },
                "dataset": format!("cloud_defend.{dataset}"),
                "module": "cloud_defend",
            }),
        );
        documents.push(finish(facts, subject.record, body, class, dataset));
    }
    documents
}

/// The `end` document of a process whose start was logged: to the process
/// log stream.
pub fn end_document(facts: &Facts, subject: &Subject<'_>) -> Document {
    let mut body = common(facts, subject);
    insert(
        &mut body,
        "event",
        json!({
            "kind": "event",
            "category": ["process"],
            "type": ["end"],
            "action": "end",
            "dataset": "cloud_defend.process",
            "module": "cloud_defend",
        }),
    );
    body.insert(
        "cloud_defend".into(),
        json!({
            "package_policy_id": facts.policy_id,
            "package_policy_revision": facts.policy_revision,
            "policy_digest": facts.policy_digest,
        }),
    );
    if let Some(code) = subject.process.exit_code {
        if let Some(p) = body.get_mut("process").and_then(Value::as_object_mut) {
            p.insert("exit_code".into(), Value::from(code));
            p.insert("end".into(), Value::from(timestamp(facts, subject.record.head.ktime_ns)));
        }
    }
    finish(facts, subject.record, body, Class::Log, "process")
}

/// The fields every document of `subject` has.
fn common(facts: &Facts, subject: &Subject<'_>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("@timestamp".into(), Value::from(timestamp(facts, subject.record.head.ktime_ns)));
    body.insert("ecs".into(), json!({"version": ECS_VERSION}));
    body.insert("agent".into(), json!({"id": facts.agent_id, "type": "cloud-defend", "version": facts.agent_version}));
    body.insert("host".into(), facts.host.clone());
    if let Some(cloud) = &facts.cloud {
        body.insert("cloud".into(), cloud.clone());
    }
    let mut process = process_fields(facts, subject.process);
    if let Some(p) = process.as_object_mut() {
        p.insert(
            "interactive".into(),
            Value::Bool(subject.record.head.flags & d4c_kernel_probes::abi::EV_INTERACTIVE != 0),
        );
        let relatives = [
            ("parent", subject.ancestors.first().copied()),
            ("session_leader", subject.ancestors.iter().copied().find(|a| a.pid == subject.process.sid)),
            ("group_leader", subject.ancestors.iter().copied().find(|a| a.pid == subject.process.pgid)),
            ("entry_leader", subject.ancestors.last().copied()),
        ];
        for (name, relative) in relatives {
            let Some(relative) = relative else { continue };
            let mut fields = process_fields(facts, relative);
            if let Some(f) = fields.as_object_mut() {
                f.insert("same_as_process".into(), Value::Bool(relative.pid == subject.process.pid));
                f.remove("previous");
                if name == "entry_leader" {
                    f.insert("entry_meta".into(), json!({"type": "container"}));
                }
            }
            p.insert(name.into(), fields);
        }
        // The process is its own leader when the cache has no ancestor in
        // the container: say so rather than leave the field out.
        if subject.ancestors.is_empty() {
            let mut own = process_fields(facts, subject.process);
            if let Some(f) = own.as_object_mut() {
                f.insert("same_as_process".into(), Value::Bool(true));
                f.remove("previous");
                f.insert("entry_meta".into(), json!({"type": "container"}));
            }
            p.insert("entry_leader".into(), own);
        }
    }
    body.insert("process".into(), process);
    if let Some(container) = subject.container {
        let (image_name, tag) = match &container.image {
            Some(image) => {
                let (full, _, tag) = d4c_artifact::event::split_image(image);
                (Some(full), tag)
            }
            None => (None, None),
        };
        body.insert(
            "container".into(),
            json!({
                "id": container.id,
                "name": container.name,
                "runtime": container.runtime,
                "image": {"name": image_name, "tag": tag},
            }),
        );
        let labels: Vec<String> = container.labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let annotations: Vec<String> = container.pod_annotations.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        body.insert(
            "orchestrator".into(),
            json!({
                "type": "kubernetes",
                "cluster": {"id": facts.cluster_id, "name": facts.cluster_name},
                "namespace": container.namespace,
                "resource": {
                    "type": "pod",
                    "name": container.pod_name,
                    "id": container.pod_uid,
                    "ip": container.pod_ips,
                    "label": labels,
                    "annotation": annotations,
                    "parent": {"type": container.parent_type},
                },
            }),
        );
    }
    strip_nulls(&mut body);
    body
}

/// `process.*` of one process.
fn process_fields(facts: &Facts, process: &Process) -> Value {
    let start_ns = facts.boot_epoch_ns.saturating_add(process.start_boot_ns);
    let mut fields = json!({
        "pid": process.pid,
        "name": process.name,
        "executable": process.executable,
        "args": process.args,
        "args_count": process.args.len(),
        "command_line": command_line(&process.args),
        "working_directory": process.working_directory,
        "entity_id": entity_id(&facts.agent_id, process.pid, start_ns / 1_000_000_000),
        "start": timestamp(facts, process.start_boot_ns),
        "user": {"id": process.uid.to_string()},
        "group": {"id": process.gid.to_string()},
    });
    if let (Some(f), false) = (fields.as_object_mut(), process.previous.is_empty()) {
        let previous: Vec<Value> =
            process.previous.iter().map(|e| json!({"executable": e.executable, "args": e.args})).collect();
        f.insert("previous".into(), Value::Array(previous));
    }
    if process.args.is_empty() {
        if let Some(f) = fields.as_object_mut() {
            f.remove("args");
            f.remove("command_line");
        }
    }
    fields
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
fn file_fields(path: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').filter(|(stem, ext)| !stem.is_empty() && !ext.is_empty()).map(|(_, e)| e);
    let mut fields = json!({"path": path, "name": name});
    if let (Some(f), Some(ext)) = (fields.as_object_mut(), extension) {
        f.insert("extension".into(), Value::from(ext));
    }
    fields
}

/// Adds the data stream and the id.
fn finish(facts: &Facts, record: &Record, mut body: Map<String, Value>, class: Class, dataset: &str) -> Document {
    let stream = format!("logs-cloud_defend.{dataset}-{}", facts.namespace);
    body.insert(
        "data_stream".into(),
        json!({"type": "logs", "dataset": format!("cloud_defend.{dataset}"), "namespace": facts.namespace}),
    );
    let id = document_id(facts, record, dataset);
    if let Some(event) = body.get_mut("event").and_then(Value::as_object_mut) {
        event.insert("id".into(), Value::from(id.clone()));
    }
    let body = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
    Document { stream, id, class, body }
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

fn insert(body: &mut Map<String, Value>, key: &str, value: Value) {
    body.insert(key.into(), value);
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

    #[test]
    fn file_fields_split_name_and_extension() {
        assert_eq!(file_fields("/etc/nginx/nginx.conf")["extension"], "conf");
        assert_eq!(file_fields("/usr/bin/.hidden").get("extension"), None);
        assert_eq!(file_fields("/usr/bin/tool")["name"], "tool");
    }
}
