//! The JSON Schema of the policy format against the policy corpus.
//!
//! Every policy under `testdata/policies/` says in its header what it
//! expects:
//!
//! ```text
//! # <what the file exercises>
//! # expect: clean            (or `# expect: D4C0014@12 D4C0024@7`)
//! # schema: reject           (optional: the JSON schema must reject it)
//! ```
//!
//! A clean policy must validate against [`d4cc::schema::policy_schema`]
//! (the schema never rejects what the linter accepts); a policy marked
//! `schema: reject` must not. Policies shipped under `deploy/` must validate
//! too.

// A test: a failed assumption is a failed test (as `clippy.toml` allows in
// `#[test]` functions, here for the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4cc::ast::{ConditionKey, PolicyKind, LEGACY_KEYS, UNSUPPORTED_KEYS};
use d4cc::diag::Diagnostics;
use d4cc::model::Operation;
use d4cc::schema::{policy_schema, yaml_to_json};
use d4cc::source::SourceFile;
use jsonschema::Validator;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validator() -> Validator {
    let schema = policy_schema();
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("the schema does not compile: {e}"))
}

/// Every `*.yaml` / `*.yml` file under `dir`, sorted; empty when `dir` is absent.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// What a corpus file's header says.
#[derive(Debug, Default)]
struct Header {
    /// The text after `# expect:`, trimmed.
    expect: Option<String>,
    /// Whether `# schema: reject` is present.
    schema_reject: bool,
}

impl Header {
    fn clean(&self) -> bool {
        self.expect.as_deref() == Some("clean")
    }
}

/// Reads the comment lines at the top of `text`.
fn header(text: &str) -> Header {
    let mut header = Header::default();
    for line in text.lines().map(str::trim).take_while(|l| l.starts_with('#')) {
        let line = line.trim_start_matches('#').trim();
        if let Some(expect) = line.strip_prefix("expect:") {
            header.expect = Some(expect.trim().to_string());
        } else if let Some(schema) = line.strip_prefix("schema:") {
            header.schema_reject = schema.trim() == "reject";
        }
    }
    header
}

/// The file as JSON; `None` when it is not UTF-8 or not YAML, or holds
/// its policy inside an agent configuration or a Fleet package policy
/// (such files exercise the front end, not the schema).
fn load(path: &Path) -> Option<(String, Value)> {
    let bytes = std::fs::read(path).unwrap();
    let source = SourceFile::from_bytes(path.display().to_string(), bytes).ok()?;
    let mut diagnostics = Diagnostics::default();
    let root = d4cc::yaml::parse(&source, &mut diagnostics)?;
    let located = d4cc::locate::locate(&root, &mut diagnostics)?;
    if located.form != d4cc::locate::Form::Policy {
        return None;
    }
    Some((source.text, yaml_to_json(&root)))
}

fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|e| format!("at `{}`: {e}", e.instance_path())).collect()
}

fn relative(path: &Path) -> String {
    let root = repo();
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    let schema = policy_schema();
    if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
        panic!("the policy schema is not a valid draft 2020-12 schema: {e} at `{}`", e.instance_path());
    }
    validator();
}

#[test]
fn corpus_clean_policies_validate_and_marked_ones_are_rejected() {
    let dir = repo().join("testdata/policies");
    let files = yaml_files(&dir);
    assert!(
        !files.is_empty(),
        "{} holds no policies; this test needs at least one `# expect: clean` \
         file and one `# schema: reject` file",
        dir.display()
    );
    let validator = validator();
    let (mut clean, mut rejected, mut problems) = (0, 0, Vec::new());
    for path in &files {
        let name = relative(path);
        let Some((text, instance)) = load(path) else { continue };
        let header = header(&text);
        if header.clean() && header.schema_reject {
            problems.push(format!("{name}: says both `expect: clean` and `schema: reject`"));
            continue;
        }
        if header.clean() {
            clean += 1;
            for error in errors(&validator, &instance) {
                problems.push(format!("{name}: clean, but the schema rejects it {error}"));
            }
        } else if header.schema_reject {
            rejected += 1;
            if validator.is_valid(&instance) {
                problems.push(format!("{name}: marked `schema: reject`, but the schema accepts it"));
            }
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    assert!(clean > 0, "no `# expect: clean` policy under {}", dir.display());
    assert!(rejected > 0, "no `# schema: reject` policy under {}", dir.display());
}

#[test]
fn deployed_policies_validate() {
    let deploy = repo().join("deploy");
    if !deploy.join("policies").is_dir() {
        return;
    }
    let validator = validator();
    let mut problems = Vec::new();
    for path in yaml_files(&deploy) {
        let name = relative(&path);
        let in_policies = path.starts_with(deploy.join("policies"));
        let Some((text, instance)) = load(&path) else {
            if in_policies {
                problems.push(format!("{name}: not readable as YAML"));
            }
            continue;
        };
        // Outside `deploy/policies/`, only files shaped like a policy (not
        // Kubernetes manifests) are policies.
        let looks_like_policy = instance
            .as_object()
            .is_some_and(|o| (o.contains_key("file") || o.contains_key("process")) && !o.contains_key("apiVersion"));
        let header = header(&text);
        let expects_findings = header.expect.as_deref().is_some_and(|e| e != "clean") || header.schema_reject;
        if !(in_policies || looks_like_policy) || expects_findings {
            continue;
        }
        for error in errors(&validator, &instance) {
            problems.push(format!("{name}: the schema rejects it {error}"));
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

// ---- the schema's rules, on small documents ----------------------------

fn policy(kind: PolicyKind, selector: Value) -> Value {
    json!({ kind.as_str(): { "selectors": [selector], "responses": [{ "match": ["s"], "actions": ["alert"] }] } })
}

fn valid(instance: &Value) -> bool {
    validator().is_valid(instance)
}

/// A valid value for `key` in a selector of `kind`.
fn sample(kind: PolicyKind, key: ConditionKey) -> Value {
    match key {
        ConditionKey::Operation => {
            json!([Operation::ALL.iter().find(|o| o.kind() == kind).map(|o| o.name()).unwrap()])
        }
        ConditionKey::IgnoreVolumeMounts | ConditionKey::IgnoreVolumeFiles | ConditionKey::SessionLeaderInteractive => {
            json!(true)
        }
        ConditionKey::TargetFilePath | ConditionKey::ProcessExecutable => json!(["/usr/bin/*"]),
        ConditionKey::KubernetesPodLabel => json!(["app:web"]),
        ConditionKey::ProcessUserId => json!([0, "1000"]),
        _ => json!(["x"]),
    }
}

#[test]
fn each_condition_is_accepted_in_its_selector_type_only() {
    for kind in [PolicyKind::File, PolicyKind::Process] {
        for &key in ConditionKey::ALL {
            let doc = policy(kind, json!({ "name": "s", key.key(): sample(kind, key) }));
            assert_eq!(valid(&doc), key.applies().to(kind), "{} in a {} selector", key.key(), kind.as_str());
        }
    }
}

#[test]
fn legacy_keys_are_accepted_and_unsupported_keys_rejected() {
    for &(legacy, modern) in LEGACY_KEYS {
        for kind in [PolicyKind::File, PolicyKind::Process] {
            let doc = policy(kind, json!({ "name": "s", legacy: sample(kind, modern) }));
            assert_eq!(valid(&doc), modern.applies().to(kind), "{legacy} in a {} selector", kind.as_str());
        }
    }
    for (key, _) in UNSUPPORTED_KEYS {
        for kind in [PolicyKind::File, PolicyKind::Process] {
            let doc =
                policy(kind, json!({ "name": "s", "operation": sample(kind, ConditionKey::Operation), *key: ["x"] }));
            assert!(!valid(&doc), "{key} accepted in a {} selector", kind.as_str());
        }
    }
    let doc =
        policy(PolicyKind::File, json!({ "name": "s", "orchestratorType": ["kubernetes"], "targetFilePath": ["/x"] }));
    assert!(valid(&doc));
    let doc =
        policy(PolicyKind::File, json!({ "name": "s", "orchestratorType": ["docker"], "targetFilePath": ["/x"] }));
    assert!(!valid(&doc));
}

#[test]
fn operations_of_the_other_type_are_rejected() {
    for kind in [PolicyKind::File, PolicyKind::Process] {
        for op in Operation::ALL {
            let doc = policy(kind, json!({ "name": "s", "operation": [op.name()] }));
            assert_eq!(valid(&doc), op.kind() == kind, "{} in a {} selector", op.name(), kind.as_str());
        }
    }
}

#[test]
fn structure_is_enforced() {
    let selector = json!({ "name": "s", "operation": ["fork"] });
    let response = json!({ "match": ["s"], "actions": ["log"] });
    let ok = json!({ "process": { "selectors": [selector], "responses": [response] }, "version": "1" });
    assert!(valid(&ok));
    let bad = [
        json!({}),
        json!({ "version": "1" }),
        json!({ "process": { "selectors": [selector], "responses": [response] }, "other": 1 }),
        json!({ "process": { "selectors": [], "responses": [response] } }),
        json!({ "process": { "selectors": [selector] } }),
        json!({ "process": { "selectors": [selector], "responses": [response], "x": [] } }),
        json!({ "process": { "selectors": [{ "name": "s" }], "responses": [response] } }),
        json!({ "process": { "selectors": [{ "operation": ["fork"] }], "responses": [response] } }),
        json!({ "process": { "selectors": [{ "name": "-s", "operation": ["fork"] }], "responses": [response] } }),
        json!({ "process": { "selectors": [{ "name": "s", "operation": [] }], "responses": [response] } }),
        json!({ "process": { "selectors": [{ "name": "s", "processName": [""] }], "responses": [response] } }),
        json!({ "process": { "selectors": [{ "name": "s", "processName": "bash" }], "responses": [response] } }),
        json!({ "process": { "selectors": [{ "name": "s", "sessionLeaderInteractive": "true" }], "responses": [response] } }),
        json!({ "process": { "selectors": [{ "name": "s", "processExecutable": ["bin/sh"] }], "responses": [response] } }),
        json!({ "process": { "selectors": [selector], "responses": [{ "match": ["s"] }] } }),
        json!({ "process": { "selectors": [selector], "responses": [{ "actions": ["log"] }] } }),
        json!({ "process": { "selectors": [selector], "responses": [{ "match": ["s"], "actions": ["warn"] }] } }),
        json!({ "process": { "selectors": [selector], "responses": [{ "match": ["s"], "actions": ["block"] }] } }),
        json!({ "process": { "selectors": [selector], "responses": [{ "match": ["s"], "actions": ["log"], "when": 1 }] } }),
        json!({ "process": { "selectors": [selector], "responses": [response] }, "version": 1 }),
    ];
    for doc in &bad {
        assert!(!valid(doc), "accepted: {doc}");
    }
    let block = json!({ "process": { "selectors": [selector], "responses": [{ "match": ["s"], "actions": ["block", "alert"] }] } });
    assert!(valid(&block));
    // Kibana's editor saves `exclude: []`: a warning (D4C0037), not an error.
    let empty_exclude = json!({ "process": { "selectors": [selector], "responses": [{ "match": ["s"], "exclude": [], "actions": ["log"] }] } });
    assert!(valid(&empty_exclude));
}

#[test]
fn header_parsing() {
    let h = header("# what\n# expect: D4C0006@8 D4C0024@3\n# schema: reject\nfile:\n# expect: clean\n");
    assert_eq!(h.expect.as_deref(), Some("D4C0006@8 D4C0024@3"));
    assert!(h.schema_reject && !h.clean());
    assert!(header("# x\n# expect: clean\nfile: {}\n").clean());
}
