//! Stage 1b: where the policy lives in a file.
//!
//! Input: the root [`Node`] of a file. Output: a [`Located`] policy and the
//! package policy's id and revision when the file carries them, plus
//! diagnostics. Users hold policies in three forms, told apart by content,
//! never by file name:
//!
//! - a plain policy: a map with `file:` and/or `process:` (YAML or JSON);
//! - an Elastic Agent standalone configuration: `inputs:` holding one input
//!   of `type: cloud_defend/control`, with `package_policy_id`, `revision`
//!   and `streams`; the policy is the node under the alerts stream's
//!   (`data_stream.dataset: cloud_defend.alerts`) `security-policy:`;
//! - a Fleet package policy exported as JSON (also wrapped as the API
//!   answers it, `{"item": ...}` or `{"items": [...]}`): the policy is the
//!   YAML *string* in the `cloud_defend/control` input's `configuration`
//!   variable (`vars.configuration.value`); the id and revision are the
//!   package policy's `id` and `revision`.
//!
//! Rules: a file holds exactly one policy (`D4C0039` names where none was
//! found, or the second); a file that reads as two forms is read as the one
//! the original agent would run and says so (`D4C0041`); an id that the
//! artifact cannot hold or a revision that the integration's `short`
//! mapping cannot (`D4C0040`) is an error at its span. The original's agent
//! requires both in a standalone configuration; a Fleet export of a policy
//! never saved has neither, and compiles with the defaults.

use crate::codes::Code;
use crate::diag::{Diagnostic, Diagnostics};
use crate::span::{Span, Spanned};
use crate::yaml::{Node, NodeKind, ScalarType};
use d4c_artifact::POLICY_NAME_CAPACITY;

/// The input type of Defend for Containers.
pub const INPUT_TYPE: &str = "cloud_defend/control";

/// The data stream whose stream carries the policy in an agent configuration.
pub const ALERTS_DATASET: &str = "cloud_defend.alerts";

/// The largest revision `cloud_defend.package_policy_revision` (a `short`
/// in the integration's mappings) holds: the artifact's limit, which
/// d4c-runtime checks too.
pub const MAX_REVISION: u64 = d4c_artifact::MAX_REVISION;

/// The form a policy was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// A plain policy file.
    Policy,
    /// An Elastic Agent standalone configuration.
    AgentConfig,
    /// A Fleet package policy (JSON).
    FleetPackagePolicy,
}

impl Form {
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Form::Policy => "a policy",
            Form::AgentConfig => "an Elastic Agent configuration",
            Form::FleetPackagePolicy => "a Fleet package policy",
        }
    }
}

/// The package policy's identity, as the file gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyMetadata {
    /// `package_policy_id` (agent) or `id` (Fleet).
    pub id: Option<Spanned<String>>,
    /// `revision`, checked to fit [`MAX_REVISION`].
    pub revision: Option<Spanned<u64>>,
}

/// Where the policy is.
#[derive(Clone, Debug)]
pub enum PolicyAt<'n> {
    /// A node of the file's own tree (a plain policy, an agent's `security-policy`).
    Node(&'n Node),
    /// A string of the file that holds the policy's YAML (Fleet's `configuration`).
    Embedded(&'n Node),
}

/// A policy found in a file.
#[derive(Clone, Debug)]
pub struct Located<'n> {
    /// The form the file has.
    pub form: Form,
    /// Where the policy is.
    pub policy: PolicyAt<'n>,
    /// The package policy's id and revision.
    pub metadata: PolicyMetadata,
}

/// Finds the policy in `root`; `None` (with a diagnostic) when the file is
/// an agent configuration or package policy without exactly one.
pub fn locate<'n>(root: &'n Node, diagnostics: &mut Diagnostics) -> Option<Located<'n>> {
    let plain =
        || Some(Located { form: Form::Policy, policy: PolicyAt::Node(root), metadata: PolicyMetadata::default() });
    let NodeKind::Map(_) = &root.kind else { return plain() };
    let is_policy = get(root, "file").is_some() || get(root, "process").is_some();
    // The Fleet API's answers wrap package policies: `{"item": ...}`, `{"items": [...]}`.
    let packages: Vec<&Node> = match (get_node(root, "item"), get(root, "items")) {
        (Some((_, item)), _) => vec![item],
        (None, Some((_, NodeKind::Seq(items)))) => items.iter().collect(),
        _ => vec![root],
    };
    let mut inputs: Vec<(&Node, &Node)> = Vec::new();
    let mut inputs_key: Option<Span> = None;
    let mut fleet = false;
    for package in &packages {
        let Some((key, NodeKind::Seq(items))) = get(package, "inputs") else { continue };
        inputs_key.get_or_insert(key.span);
        fleet |= get(package, "package").is_some()
            || get(package, "policy_id").is_some()
            || get(package, "policy_ids").is_some();
        for input in items {
            if get(input, "type").and_then(|(_, v)| str_of(v)) == Some(INPUT_TYPE) {
                inputs.push((package, input));
            }
        }
    }
    let Some(inputs_at) = inputs_key else { return plain() };
    let form = if fleet { Form::FleetPackagePolicy } else { Form::AgentConfig };
    if inputs.is_empty() {
        if is_policy {
            // `inputs:` beside a policy's sections: a policy with an unknown key.
            return plain();
        }
        diagnostics.push(
            Diagnostic::new(
                Code::PolicyLocation,
                inputs_at,
                format!("{} without a `{INPUT_TYPE}` input holds no policy", form.describe()),
            )
            .label("no input of this type")
            .help(format!(
                "add the Defend for Containers input (`type: {INPUT_TYPE}`), or lint the policy file itself"
            )),
        );
        return None;
    }
    if let [(_, first), (_, second), ..] = inputs.as_slice() {
        let at = get_node(second, "type").map_or(second.span, |(_, v)| v.span);
        let first_at = get_node(first, "type").map_or(first.span, |(_, v)| v.span);
        diagnostics.push(
            Diagnostic::new(
                Code::PolicyLocation,
                at,
                format!(
                    "{} holds {} `{INPUT_TYPE}` inputs; d4cc reads one policy per file",
                    form.describe(),
                    inputs.len()
                ),
            )
            .label("another policy")
            .secondary(first_at, "the first")
            .help("put each package policy's configuration in a file of its own"),
        );
        return None;
    }
    let (package, input) = *inputs.first()?;
    if is_policy {
        let at = get(root, "file").or_else(|| get(root, "process")).map_or(root.span, |(k, _)| k.span);
        diagnostics.push(
            Diagnostic::new(
                Code::AmbiguousForm,
                at,
                format!(
                    "this file reads as a policy and as {}; d4cc reads the policy of its `{INPUT_TYPE}` input, as the agent would",
                    form.describe()
                ),
            )
            .label("ignored")
            .secondary(get_node(input, "type").map_or(input.span, |(_, v)| v.span), "the policy read is this input's")
            .help("remove the top-level `file:`/`process:` sections, or keep the policy in a file of its own"),
        );
    }
    let stream_policy = stream_policy(input, diagnostics);
    let configuration = get_node(input, "vars").and_then(|(_, vars)| get_node(vars, "configuration")).map(|(_, c)| c);
    let type_at = get_node(input, "type").map_or(input.span, |(_, v)| v.span);
    let (form, policy) = match (stream_policy, configuration) {
        (Some(node), Some(_)) => {
            diagnostics.push(
                Diagnostic::new(
                    Code::AmbiguousForm,
                    type_at,
                    "this input holds a policy under its alerts stream's `security-policy` and in its `configuration` variable; d4cc reads the stream's, as the agent would",
                )
                .label("two policies")
                .secondary(node.span, "read")
                .help("keep one: `security-policy` in an agent configuration, `vars.configuration` in a Fleet package policy"),
            );
            (Form::AgentConfig, PolicyAt::Node(node))
        }
        (Some(node), None) => (Form::AgentConfig, PolicyAt::Node(node)),
        (None, Some(configuration)) => (Form::FleetPackagePolicy, fleet_policy(configuration, diagnostics)?),
        (None, None) => {
            diagnostics.push(
                Diagnostic::new(
                    Code::PolicyLocation,
                    type_at,
                    format!("this `{INPUT_TYPE}` input holds no policy"),
                )
                .label("no policy")
                .help(format!(
                    "an agent configuration has the policy under the `{ALERTS_DATASET}` stream's `security-policy:`; a Fleet package policy, in `vars.configuration.value`"
                )),
            );
            return None;
        }
    };
    let metadata = match form {
        Form::AgentConfig => metadata(input, "package_policy_id", type_at, true, diagnostics),
        _ => metadata(package, "id", type_at, false, diagnostics),
    };
    Some(Located { form, policy, metadata })
}

/// The policy under the alerts stream's `security-policy`, if an input has one.
fn stream_policy<'n>(input: &'n Node, diagnostics: &mut Diagnostics) -> Option<&'n Node> {
    let Some((_, NodeKind::Seq(streams))) = get(input, "streams") else { return None };
    let mut found = None;
    for stream in streams {
        let Some((key, policy)) = get_node(stream, "security-policy") else { continue };
        let dataset = get_node(stream, "data_stream").and_then(|(_, d)| get(d, "dataset")).and_then(|(_, v)| str_of(v));
        if dataset != Some(ALERTS_DATASET) {
            diagnostics.push(
                Diagnostic::new(
                    Code::PolicyLocation,
                    key.span,
                    format!("`security-policy` is read from the `{ALERTS_DATASET}` stream only"),
                )
                .label("not the alerts stream")
                .help(format!("move it to the stream whose `data_stream.dataset` is `{ALERTS_DATASET}`")),
            );
            continue;
        }
        found.get_or_insert(policy);
    }
    found
}

/// The policy of a Fleet `configuration` variable: `{value: "<yaml>"}`.
fn fleet_policy<'n>(configuration: &'n Node, diagnostics: &mut Diagnostics) -> Option<PolicyAt<'n>> {
    let value = get_node(configuration, "value").map(|(_, v)| v);
    match value.map(|v| (v, &v.kind)) {
        Some((v, NodeKind::Scalar(s))) if s.ty == ScalarType::Str && !s.value.trim().is_empty() => {
            Some(PolicyAt::Embedded(v))
        }
        Some((v, NodeKind::Map(_))) => Some(PolicyAt::Node(v)),
        other => {
            let at = other.map_or(configuration.span, |(v, _)| v.span);
            let found = other.map_or("nothing".to_string(), |(v, _)| v.describe());
            diagnostics.push(
                Diagnostic::new(
                    Code::PolicyLocation,
                    at,
                    format!("expected the policy's YAML text in `vars.configuration.value`, found {found}"),
                )
                .label("no policy")
                .help("Kibana saves the policy there as a string; export the package policy again"),
            );
            None
        }
    }
}

/// The id under `id_key` and the `revision` of `holder`, checked.
fn metadata(holder: &Node, id_key: &str, at: Span, required: bool, diagnostics: &mut Diagnostics) -> PolicyMetadata {
    let mut out = PolicyMetadata::default();
    match get_node(holder, id_key) {
        Some((_, v)) => match v.as_scalar().filter(|s| s.ty != ScalarType::Null && !s.value.is_empty()) {
            Some(s) if s.value.len() <= POLICY_NAME_CAPACITY => {
                match crate::syntax::control_character(v, &s.value, &format_args!("`{id_key}`")) {
                    Some(diagnostic) => diagnostics.push(diagnostic),
                    None => out.id = Some(Spanned::new(s.value.clone(), v.span)),
                }
            }
            Some(s) => diagnostics.push(
                Diagnostic::new(
                    Code::PolicyMetadata,
                    v.span,
                    format!(
                        "`{id_key}` is {} bytes; an artifact records at most {POLICY_NAME_CAPACITY}",
                        s.value.len()
                    ),
                )
                .label("too long")
                .help("Fleet's ids are 36-byte UUIDs; use one, or give the artifact a `--name`"),
            ),
            None => diagnostics.push(
                Diagnostic::new(
                    Code::PolicyMetadata,
                    v.span,
                    format!("expected `{id_key}` to be the package policy's id, found {}", v.describe()),
                )
                .label("not an id"),
            ),
        },
        None if required => diagnostics.push(
            Diagnostic::new(Code::PolicyMetadata, at, format!("this input has no `{id_key}`"))
                .label(format!("`{id_key}` missing"))
                .help(format!("the original agent requires it; documents carry it as `cloud_defend.package_policy_id`: add `{id_key}: <uuid>`")),
        ),
        None => {}
    }
    match get_node(holder, "revision") {
        Some((_, v)) => match v.as_scalar().filter(|s| s.ty == ScalarType::Int).and_then(|s| s.value.parse::<u64>().ok()) {
            Some(revision) if revision <= MAX_REVISION => out.revision = Some(Spanned::new(revision, v.span)),
            Some(revision) => diagnostics.push(
                Diagnostic::new(
                    Code::PolicyMetadata,
                    v.span,
                    format!(
                        "revision {revision} does not fit `cloud_defend.package_policy_revision`, a `short` in the integration's mappings (at most {MAX_REVISION})"
                    ),
                )
                .label("too large")
                .help("documents with a larger revision are rejected or lose the field: start the revisions again below 32,768"),
            ),
            None => diagnostics.push(
                Diagnostic::new(
                    Code::PolicyMetadata,
                    v.span,
                    format!("expected `revision` to be a whole number from 0 to {MAX_REVISION}, found {}", v.describe()),
                )
                .label("not a revision"),
            ),
        },
        None if required => diagnostics.push(
            Diagnostic::new(Code::PolicyMetadata, at, "this input has no `revision`")
                .label("`revision` missing")
                .help("the original agent requires it; documents carry it as `cloud_defend.package_policy_revision`: add `revision: 1`"),
        ),
        None => {}
    }
    out
}

/// The entry `key` of map `node`: its key node and its value's kind.
fn get<'n>(node: &'n Node, key: &str) -> Option<(&'n Node, &'n NodeKind)> {
    get_node(node, key).map(|(k, v)| (k, &v.kind))
}

/// The entry `key` of map `node` (the first, when written twice).
fn get_node<'n>(node: &'n Node, key: &str) -> Option<(&'n Node, &'n Node)> {
    let NodeKind::Map(entries) = &node.kind else { return None };
    entries.iter().find(|(k, _)| k.as_scalar().is_some_and(|s| s.value == key)).map(|(k, v)| (k, v))
}

fn str_of(kind: &NodeKind) -> Option<&str> {
    match kind {
        NodeKind::Scalar(s) if s.ty == ScalarType::Str => Some(s.value.as_str()),
        _ => None,
    }
}
