//! Stage 2: YAML nodes to the policy AST.
//!
//! Input: the root [`Node`] of a document. Output: the best [`Policy`] that
//! can be read from it, plus structural diagnostics: wrong YAML types
//! (`D4C0005`), unknown keys with a suggestion (`D4C0006`), duplicate keys
//! (`D4C0007`), missing keys (`D4C0008`), empty values (`D4C0009`; an
//! empty `exclude`, as Kibana's editor saves it, is `D4C0037`), legacy
//! keys (`D4C0010`, with a fix), unsupported conditions (`D4C0011`) and
//! conditions of the other selector type (`D4C0012`).
//!
//! Recovery: a value of the wrong type is reported and, where its meaning is
//! still plain (a lone string where a list belongs, a number where a string
//! belongs), used as if written right, so that later rules still run. What
//! cannot be read is left out of the AST, and the selector remembers it
//! (`had_unreadable_keys`) so that no rule repeats the problem.

use crate::ast::{
    Condition, ConditionKey, ConditionValue, Policy, PolicyKind, Response, Section, Selector, Value, ValueSyntax,
    LEGACY_KEYS, ORCHESTRATOR_TYPE_KEY, UNSUPPORTED_KEYS,
};
use crate::codes::Code;
use crate::diag::{Diagnostic, Diagnostics, Edit, Fix};
use crate::seen::FirstSeen;
use crate::span::{Span, Spanned};
use crate::suggest::did_you_mean;
use crate::yaml::{Node, NodeKind, Scalar, ScalarType};

/// Reads the policy in `root`, pushing every structural problem into
/// `diagnostics`. `text` is the source the spans point into (for fixes).
pub fn read_policy(root: &Node, text: &str, diagnostics: &mut Diagnostics) -> Policy {
    let mut reader = Reader { text, diagnostics };
    reader.policy(root)
}

struct Reader<'a> {
    text: &'a str,
    diagnostics: &'a mut Diagnostics,
}

/// A map entry whose key is a string, with the key's text and span.
struct Entry<'n> {
    key: &'n str,
    key_span: Span,
    value: &'n Node,
}

const TOP_KEYS: &[&str] = &["file", "process", "network", "version"];
const SECTION_KEYS: &[&str] = &["selectors", "responses"];
const RESPONSE_KEYS: &[&str] = &["match", "exclude", "actions"];

impl Reader<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn policy(&mut self, root: &Node) -> Policy {
        let mut policy = Policy::default();
        let mut unknown_top_key = false;
        let Some(entries) =
            self.map(root, "a policy", "a policy is a map with `file:`, `process:` and/or `network:` sections")
        else {
            return policy;
        };
        for entry in entries {
            match entry.key {
                "file" | "process" | "network" => {
                    let kind = match entry.key {
                        "file" => PolicyKind::File,
                        "process" => PolicyKind::Process,
                        _ => PolicyKind::Network,
                    };
                    if let Some(section) = self.section(kind, &entry) {
                        policy.sections.push(section);
                    }
                }
                "version" => {
                    if let Some(value) = self.string(entry.value, What::key("version")) {
                        policy.version = Some(Spanned::new(value.text, value.span));
                    }
                }
                other => {
                    unknown_top_key = true;
                    self.unknown_key(other, entry.key_span, TOP_KEYS.iter().copied(), "at the top of a policy");
                }
            }
        }
        // After an unknown top-level key (`proces:`), "no section" would only
        // repeat that diagnostic.
        if policy.sections.is_empty() && !unknown_top_key && !entries_have_any(root, &["file", "process", "network"]) {
            self.push(
                Diagnostic::new(
                    Code::MissingKey,
                    Span::point(root.span.start),
                    "the policy has no `file:`, `process:` or `network:` section",
                )
                .help("add a `file:`, `process:` or `network:` section with `selectors:` and `responses:`"),
            );
        }
        policy
    }

    fn section(&mut self, kind: PolicyKind, entry: &Entry) -> Option<Section> {
        let what = format!("the `{}` section", kind.as_str());
        let entries = self.map(entry.value, &what, "a section is a map with `selectors:` and `responses:` lists")?;
        let mut section = Section {
            kind,
            key_span: entry.key_span,
            selectors: Vec::new(),
            responses: Vec::new(),
            selectors_complete: true,
            responses_complete: true,
        };
        let (mut saw_selectors, mut saw_responses) = (false, false);
        for item in entries {
            match item.key {
                "selectors" => {
                    saw_selectors = true;
                    let (nodes, complete) = self.list(item.value, "`selectors`");
                    section.selectors_complete = complete;
                    for node in nodes {
                        match self.selector(kind, node) {
                            Some(selector) => section.selectors.push(selector),
                            None => section.selectors_complete = false,
                        }
                    }
                }
                "responses" => {
                    saw_responses = true;
                    let (nodes, complete) = self.list(item.value, "`responses`");
                    section.responses_complete = complete;
                    for node in nodes {
                        match self.response(node) {
                            Some(response) => section.responses.push(response),
                            None => section.responses_complete = false,
                        }
                    }
                }
                other => self.unknown_key(other, item.key_span, SECTION_KEYS.iter().copied(), &format!("in {what}")),
            }
        }
        // A missing list cannot have been read whole (`selector:` for
        // `selectors:`): later rules must not treat its names as absent.
        section.selectors_complete &= saw_selectors;
        section.responses_complete &= saw_responses;
        for (seen, key) in [(saw_selectors, "selectors"), (saw_responses, "responses")] {
            if !seen {
                self.push(
                    Diagnostic::new(Code::MissingKey, entry.key_span, format!("{what} has no `{key}` list"))
                        .label(format!("`{key}` missing here"))
                        .help(format!("add `{key}:` with at least one item")),
                );
            }
        }
        Some(section)
    }

    fn selector(&mut self, kind: PolicyKind, node: &Node) -> Option<Selector> {
        let entries = self.map(node, "a selector", "a selector is a map with a `name` and conditions")?;
        let mut selector = Selector { span: node.span, name: None, conditions: Vec::new(), had_unreadable_keys: false };
        // Where each condition was first written, to report duplicates that
        // YAML does not see (a legacy key next to its modern name).
        let mut seen: FirstSeen<ConditionKey> = FirstSeen::new();
        for entry in &entries {
            if entry.key == "name" {
                selector.name = self.string(entry.value, What::described("a selector's `name`"));
                continue;
            }
            let key = match ConditionKey::from_key(entry.key) {
                Some(key) => key,
                None => match LEGACY_KEYS.iter().find(|(legacy, _)| *legacy == entry.key) {
                    Some(&(legacy, modern)) => {
                        self.push(
                            Diagnostic::new(
                                Code::LegacyKey,
                                entry.key_span,
                                format!("`{legacy}` is the old name of `{}`", modern.key()),
                            )
                            .label("legacy key")
                            .help(format!("rename it to `{}`", modern.key()))
                            .fix(Fix {
                                description: format!("rename `{legacy}` to `{}`", modern.key()),
                                edits: vec![Edit { span: entry.key_span, replacement: modern.key().to_string() }],
                            }),
                        );
                        modern
                    }
                    None => {
                        selector.had_unreadable_keys = true;
                        self.unreadable_condition(kind, entry);
                        continue;
                    }
                },
            };
            if !key.applies().to(kind) {
                selector.had_unreadable_keys = true;
                self.push(wrong_kind(kind, key, entry.key_span));
                continue;
            }
            if let Some(first) = seen.first(key, entry.key_span) {
                self.push(
                    Diagnostic::new(
                        Code::DuplicateKey,
                        entry.key_span,
                        format!("the condition `{}` is written twice in this selector", key.key()),
                    )
                    .label("second time")
                    .secondary(first, "first time")
                    .help("merge the two lists into one"),
                );
                continue;
            }

            let value = if key.syntax() == ValueSyntax::Flag {
                self.flag(entry.value, key).map(ConditionValue::Bool)
            } else {
                let values = self.string_list(entry.value, What::key(entry.key), true);
                (!values.is_empty()).then_some(ConditionValue::List(values))
            };
            if let Some(value) = value {
                selector.conditions.push(Condition {
                    key,
                    key_span: entry.key_span,
                    value,
                    value_span: entry.value.span,
                });
            } else {
                selector.had_unreadable_keys = true;
            }
        }
        if selector.name.is_none() && !entries.iter().any(|e| e.key == "name") {
            self.push(
                Diagnostic::new(Code::MissingKey, Span::point(node.span.start), "this selector has no `name`")
                    .label("selector without a name")
                    .help("add `name: someName`; responses refer to selectors by name"),
            );
        }
        Some(selector)
    }

    /// Reports a selector key that is neither a condition nor a legacy name.
    fn unreadable_condition(&mut self, kind: PolicyKind, entry: &Entry) {
        if let Some(&(key, why)) = UNSUPPORTED_KEYS.iter().find(|(k, _)| *k == entry.key) {
            self.push(
                Diagnostic::new(Code::UnsupportedCondition, entry.key_span, format!("`{key}` is not supported by d4c"))
                    .label("unsupported condition")
                    .help(format!("{why}; remove it (ignoring it would make the selector match more than written)")),
            );
            return;
        }
        if entry.key == ORCHESTRATOR_TYPE_KEY {
            self.orchestrator_type(entry);
            return;
        }
        let keys =
            std::iter::once("name").chain(ConditionKey::ALL.iter().filter(|c| c.applies().to(kind)).map(|c| c.key()));
        if let Some(other) = ConditionKey::ALL.iter().find(|c| c.key().eq_ignore_ascii_case(entry.key)) {
            if !other.applies().to(kind) {
                self.push(wrong_kind(kind, *other, entry.key_span));
                return;
            }
        }
        self.unknown_key(entry.key, entry.key_span, keys, &format!("in a {} selector", kind.as_str()));
    }

    /// `orchestratorType: [kubernetes]` always holds under d4c; anything else never does.
    fn orchestrator_type(&mut self, entry: &Entry) {
        let values = self.string_list(entry.value, What::key("orchestratorType"), true);
        if let Some(bad) = values.iter().find(|v| v.text != "kubernetes") {
            self.push(
                Diagnostic::new(
                    Code::UnsatisfiableSelector,
                    bad.span,
                    format!("`orchestratorType` `{}` never matches: d4c protects Kubernetes pods only", bad.text),
                )
                .label("not `kubernetes`")
                .help("remove `orchestratorType`"),
            );
        } else {
            self.push(
                Diagnostic::new(
                    Code::LegacyKey,
                    entry.key_span,
                    "`orchestratorType` is obsolete: every container d4c protects is a Kubernetes pod",
                )
                .label("always true")
                .help("remove the `orchestratorType` line"),
            );
        }
    }

    fn response(&mut self, node: &Node) -> Option<Response> {
        let entries =
            self.map(node, "a response", "a response is a map with `match`, optional `exclude`, and `actions`")?;
        let mut response = Response { span: node.span, matches: None, excludes: Vec::new(), actions: None };
        for (index, entry) in entries.iter().enumerate() {
            match entry.key {
                "match" => {
                    response.matches =
                        Some(Spanned::new(self.string_list(entry.value, What::key("match"), false), entry.key_span));
                }
                "exclude" if matches!(&entry.value.kind, NodeKind::Seq(items) if items.is_empty()) => {
                    self.empty_exclude(&entries, index);
                }
                "exclude" => response.excludes = self.string_list(entry.value, What::key("exclude"), true),
                "actions" => {
                    response.actions =
                        Some(Spanned::new(self.string_list(entry.value, What::key("actions"), false), entry.key_span));
                }
                other => self.unknown_key(other, entry.key_span, RESPONSE_KEYS.iter().copied(), "in a response"),
            }
        }
        for (present, key, help) in [
            (response.matches.is_some(), "match", "add `match: [selectorName]`: the selectors that make it fire"),
            (response.actions.is_some(), "actions", "add `actions: [log]`, `[alert]` or `[alert, block]`"),
        ] {
            if !present {
                self.push(
                    Diagnostic::new(
                        Code::MissingKey,
                        Span::point(node.span.start),
                        format!("this response has no `{key}`"),
                    )
                    .label(format!("`{key}` missing"))
                    .help(help),
                );
            }
        }
        Some(response)
    }

    /// `D4C0037`: `exclude: []`, which Kibana's editor saves when an
    /// exclude box is opened and left empty. It excludes nothing; the fix
    /// removes it.
    fn empty_exclude(&mut self, entries: &[Entry], index: usize) {
        let Some(entry) = entries.get(index) else { return };
        let text = self.text;
        // An empty flow list's node spans its `[`; the `]` follows.
        let value_end = text
            .get(entry.value.span.start..)
            .filter(|rest| rest.starts_with('['))
            .and_then(|rest| rest.get(1..))
            .and_then(|inner| inner.find(']').filter(|&i| inner.get(..i).is_some_and(|gap| gap.trim().is_empty())))
            .map(|i| entry.value.span.start + i + 2);
        let span = Span::new(entry.key_span.start, value_end.unwrap_or(entry.value.span.end));
        let mut diagnostic = Diagnostic::new(Code::EmptyExclude, span, "`exclude: []` excludes nothing")
            .label("no selector listed")
            .help("remove it, or list the selectors whose operations this response must not fire for");
        if let Some(edit) = value_end.and_then(|end| remove_entry(text, entries, index, end)) {
            diagnostic = diagnostic.fix(Fix { description: "remove `exclude: []`".to_string(), edits: vec![edit] });
        }
        self.push(diagnostic);
    }

    // ---- typed readers -------------------------------------------------

    /// The entries of a map, with string keys checked for type and
    /// duplicates. `None` (and a diagnostic) when `node` is not a map.
    fn map<'n>(&mut self, node: &'n Node, what: &str, help: &str) -> Option<Vec<Entry<'n>>> {
        let pairs = match &node.kind {
            NodeKind::Map(pairs) => pairs,
            _ => {
                let code = if is_null(node) { Code::EmptyValue } else { Code::WrongType };
                self.push(
                    Diagnostic::new(code, node.span, format!("expected {what} (a map), found {}", node.describe()))
                        .label("expected a map")
                        .help(help),
                );
                return None;
            }
        };
        let mut entries = Vec::with_capacity(pairs.len());
        let mut first_at: FirstSeen<&str> = FirstSeen::new();
        for (key, value) in pairs {
            let Some(scalar) = key.as_scalar().filter(|s| s.ty != ScalarType::Null) else {
                self.push(
                    Diagnostic::new(
                        Code::WrongType,
                        key.span,
                        format!("a key must be a name, found {}", key.describe()),
                    )
                    .label("not a name"),
                );
                continue;
            };
            if let Some(first) = first_at.first(scalar.value.as_str(), key.span) {
                self.push(
                    Diagnostic::new(
                        Code::DuplicateKey,
                        key.span,
                        format!("`{}` is written twice in this map", scalar.value),
                    )
                    .label("second time")
                    .secondary(first, "first time")
                    .help("remove one, or merge them: YAML tools disagree on which one counts (d4cc reads the first)"),
                );
                continue;
            }

            entries.push(Entry { key: &scalar.value, key_span: key.span, value });
        }
        Some(entries)
    }

    /// The items of a list, and whether it was one (an empty list is
    /// reported but is a list).
    fn list<'n>(&mut self, node: &'n Node, what: &str) -> (&'n [Node], bool) {
        match &node.kind {
            NodeKind::Seq(items) => {
                if items.is_empty() {
                    self.push(
                        Diagnostic::new(Code::EmptyValue, node.span, format!("{what} is an empty list"))
                            .label("empty")
                            .help("list at least one item"),
                    );
                }
                (items, true)
            }
            _ => {
                self.not_a_list(node, &format!("{what} to be a list"), "write the items one per line, each after `- `");
                (&[], false)
            }
        }
    }

    /// A list of strings. A lone string stands for a list of one (reported,
    /// with a fix); numbers and booleans stand for their text (reported,
    /// with a fix). Empty lists and empty strings are reported.
    fn string_list(&mut self, node: &Node, what: What<'_>, optional: bool) -> Vec<Value> {
        match &node.kind {
            NodeKind::Seq(items) => {
                if items.is_empty() {
                    let help =
                        if optional { "list at least one value, or remove the key" } else { "list at least one value" };
                    self.push(
                        Diagnostic::new(Code::EmptyValue, node.span, format!("{what} is an empty list"))
                            .label("empty")
                            .help(help),
                    );
                }
                items.iter().filter_map(|item| self.string(item, What { item: true, ..what })).collect()
            }
            NodeKind::Scalar(scalar) if scalar.ty != ScalarType::Null => {
                let source = self.text.get(node.span.range()).unwrap_or_default();
                let wrapped = format!("[{source}]");
                let mut diagnostic = Diagnostic::new(
                    Code::WrongType,
                    node.span,
                    format!("expected {what} to be a list, found {}", node.describe()),
                )
                .label("expected a list")
                .help(format!("write `{wrapped}`"));
                if flow_safe(scalar, source) {
                    diagnostic = diagnostic.fix(Fix {
                        description: format!("wrap `{source}` in a list"),
                        edits: vec![Edit { span: node.span, replacement: wrapped }],
                    });
                }
                self.push(diagnostic);
                self.string(node, what).into_iter().collect()
            }
            _ => {
                self.not_a_list(
                    node,
                    &format!("{what} to be a list of strings"),
                    "write `[value, ...]` or one `- value` per line",
                );
                Vec::new()
            }
        }
    }

    /// A string. Numbers and booleans are taken as their text, with a
    /// diagnostic and a fix that quotes them.
    fn string(&mut self, node: &Node, what: What<'_>) -> Option<Value> {
        let scalar = match &node.kind {
            NodeKind::Scalar(s) => s,
            _ => {
                self.push(
                    Diagnostic::new(
                        Code::WrongType,
                        node.span,
                        format!("expected {what} to be a string, found {}", node.describe()),
                    )
                    .label("expected a string"),
                );
                return None;
            }
        };
        match scalar.ty {
            ScalarType::Str if scalar.value.is_empty() => {
                self.push(
                    Diagnostic::new(Code::EmptyValue, node.span, format!("{what} is an empty string"))
                        .label("empty")
                        .help(empty_help(what.item)),
                );
                None
            }
            ScalarType::Str => {
                if let Some(diagnostic) = control_character(node, &scalar.value, &what) {
                    self.push(diagnostic);
                }
                Some(value_of(node, scalar))
            }
            ScalarType::Null => {
                self.push(
                    Diagnostic::new(Code::EmptyValue, node.span, format!("{what} is empty"))
                        .label("no value")
                        .help(empty_help(what.item)),
                );
                None
            }
            // User ids and ports are numbers: written as YAML integers,
            // they are taken as their text (checked as decimal later).
            ScalarType::Int
                if what.key
                    && (what.text == ConditionKey::ProcessUserId.key()
                        || what.text == ConditionKey::DestinationPort.key()) =>
            {
                Some(value_of(node, scalar))
            }
            ScalarType::Bool(_) | ScalarType::Int | ScalarType::Float => {
                let quoted = serde_json::to_string(&scalar.value).unwrap_or_else(|_| format!("\"{}\"", scalar.value));
                self.push(
                    Diagnostic::new(
                        Code::WrongType,
                        node.span,
                        format!("expected {what} to be a string, found {}", node.describe()),
                    )
                    .label("YAML reads this as a number or boolean")
                    .help(format!("quote it: `{quoted}`"))
                    .fix(Fix {
                        description: format!("quote `{}`", scalar.value),
                        edits: vec![Edit { span: node.span, replacement: quoted }],
                    }),
                );
                Some(value_of(node, scalar))
            }
        }
    }

    /// Reports a node that should be a list: empty (`D4C0009`) or of
    /// another type (`D4C0005`). `expected` completes "expected ...".
    fn not_a_list(&mut self, node: &Node, expected: &str, help: &str) {
        let code = if is_null(node) { Code::EmptyValue } else { Code::WrongType };
        self.push(
            Diagnostic::new(code, node.span, format!("expected {expected}, found {}", node.describe()))
                .label("expected a list")
                .help(help),
        );
    }

    /// A boolean flag.
    fn flag(&mut self, node: &Node, key: ConditionKey) -> Option<bool> {
        if let Some(Scalar { ty: ScalarType::Bool(b), .. }) = node.as_scalar() {
            return Some(*b);
        }
        let mut diagnostic = Diagnostic::new(
            if is_null(node) { Code::EmptyValue } else { Code::WrongType },
            node.span,
            format!("expected `{}` to be `true` or `false`, found {}", key.key(), node.describe()),
        )
        .label("expected a boolean");
        if let Some(s) = node.as_scalar().filter(|s| s.ty == ScalarType::Str) {
            let meant = match s.value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "on" => Some("true"),
                "false" | "no" | "n" | "off" => Some("false"),
                _ => None,
            };
            if let Some(b) = meant {
                // YAML 1.1 read `yes`/`on` as booleans; YAML 1.2 reads them as strings.
                diagnostic =
                    diagnostic.help(format!("write `{b}` (YAML 1.2 reads `{}` as a string)", s.value)).fix(Fix {
                        description: format!("write `{b}`"),
                        edits: vec![Edit { span: node.span, replacement: b.to_string() }],
                    });
            }
        }
        self.push(diagnostic);
        None
    }

    fn unknown_key<'k>(&mut self, key: &str, span: Span, candidates: impl IntoIterator<Item = &'k str>, place: &str) {
        if key == "<<" {
            self.push(
                Diagnostic::new(Code::UnknownKey, span, "YAML merge keys (`<<`) are not part of YAML 1.2")
                    .label("merge key")
                    .help("write the keys out; an alias (`*name`) can still repeat a whole list"),
            );
            return;
        }
        let candidates: Vec<&str> = candidates.into_iter().collect();
        let mut diagnostic =
            Diagnostic::new(Code::UnknownKey, span, format!("unknown key `{key}` {place}")).label("unknown key");
        diagnostic = match did_you_mean(key, candidates.iter().copied()) {
            Some(suggestion) => diagnostic.help(format!("did you mean `{suggestion}`?")),
            None => diagnostic.help(format!(
                "the keys here are: {}",
                candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
            )),
        };
        self.push(diagnostic);
    }
}

/// The diagnostic for a condition that belongs to the other selector type.
fn wrong_kind(kind: PolicyKind, key: ConditionKey, span: Span) -> Diagnostic {
    let counterpart = match key {
        ConditionKey::TargetFilePath => Some(ConditionKey::ProcessExecutable),
        ConditionKey::ProcessExecutable => Some(ConditionKey::TargetFilePath),
        _ => None,
    };
    let owners = key.applies().describe();
    // The counterpart names the same thing only between files and
    // processes: a network selector's `processExecutable` is the acting
    // process's, not a file operated on.
    let help = match counterpart {
        Some(c) if c.applies().to(kind) && kind != PolicyKind::Network => {
            format!("{} selectors match paths with `{}`", kind.as_str(), c.key())
        }
        _ => format!("move it to a selector under {}", sections_of(key)),
    };
    Diagnostic::new(
        Code::ConditionWrongType,
        span,
        format!("`{}` is a {owners} condition, but this is a {} selector", key.key(), kind.as_str()),
    )
    .label(format!("not a {} condition", kind.as_str()))
    .help(help)
}

/// The sections whose selectors may carry `key`: "`process:` or `network:`".
fn sections_of(key: ConditionKey) -> String {
    key.applies().kinds().iter().map(|k| format!("`{}:`", k.as_str())).collect::<Vec<_>>().join(" or ")
}

/// What a value is, for messages: formatted only when a diagnostic is made,
/// so that reading a clean policy allocates no message text.
#[derive(Clone, Copy)]
struct What<'a> {
    /// The name (`version`, `match`, a condition key) or a description.
    text: &'a str,
    /// Whether `text` is a key, shown in backticks.
    key: bool,
    /// Whether the value is an item of that list.
    item: bool,
}

impl<'a> What<'a> {
    /// A key, shown in backticks.
    fn key(text: &'a str) -> Self {
        What { text, key: true, item: false }
    }

    /// A description, shown as written.
    fn described(text: &'a str) -> Self {
        What { text, key: false, item: false }
    }
}

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.item {
            f.write_str("an item of ")?;
        }
        if self.key {
            write!(f, "`{}`", self.text)
        } else {
            f.write_str(self.text)
        }
    }
}

/// The fix for an empty string: list items can go, required values cannot.
fn empty_help(item: bool) -> &'static str {
    if item {
        "write a value, or remove the item"
    } else {
        "write a value"
    }
}

/// `D4C0042`: the first control character in `value`, the string of
/// `node`, if it holds one. A carriage return, an escape sequence or a
/// bidirectional override shows on a terminal as something other than
/// what the kernel matches: `/x\r/etc/passwd` looks like `/etc/passwd`.
pub(crate) fn control_character(node: &Node, value: &str, what: &dyn std::fmt::Display) -> Option<Diagnostic> {
    let (at, c) = value.char_indices().find(|&(_, c)| d4c_artifact::display::is_control(c))?;
    let name = match c {
        '\t' => "a tab",
        '\n' => "a line break",
        '\r' => "a carriage return",
        '\u{1b}' => "an escape",
        '\0' => "a NUL",
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => "a bidirectional override",
        _ => "a control character",
    };
    Some(
        Diagnostic::new(
            Code::ControlCharacter,
            node.sub_span(at..at + c.len_utf8()),
            format!("{what} holds {name}: `{value}`"),
        )
        .label("control character")
        .help("remove it: a terminal shows the value as something other than what d4c matches, so a reviewer can misread it"),
    )
}

fn value_of(node: &Node, scalar: &Scalar) -> Value {
    Value { text: scalar.value.clone(), span: node.span, verbatim_at: scalar.verbatim_at }
}

fn is_null(node: &Node) -> bool {
    matches!(node.as_scalar(), Some(s) if s.ty == ScalarType::Null)
}

/// Whether `[source]` reads back as a list holding the same scalar: quoted
/// scalars always do; plain ones when they hold no flow indicator.
fn flow_safe(scalar: &Scalar, source: &str) -> bool {
    let quoted = source.starts_with('"') || source.starts_with('\'');
    quoted || (scalar.verbatim_at.is_some() && !source.contains([',', '[', ']', '{', '}', '#', '\n']))
}

/// The edit that removes map entry `index` of `entries`, whose value ends
/// at byte `value_end`: its whole line when it has one to itself (the
/// block style Kibana writes), else up to the next entry's key, when only
/// spaces, line breaks and a comma stand between (`- exclude: []` as a
/// list item's first key, or a flow map). `None` when neither is safe.
fn remove_entry(text: &str, entries: &[Entry], index: usize, value_end: usize) -> Option<Edit> {
    let entry = entries.get(index)?;
    let line_start = text.get(..entry.key_span.start)?.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text.get(value_end..)?.find('\n').map_or(text.len(), |i| value_end + i + 1);
    let before = text.get(line_start..entry.key_span.start)?;
    let after = text.get(value_end..line_end)?;
    if before.trim().is_empty() && after.trim().is_empty() {
        return Some(Edit { span: Span::new(line_start, line_end), replacement: String::new() });
    }
    let next = entries.get(index + 1)?;
    let gap = text.get(value_end..next.key_span.start)?;
    gap.chars()
        .all(|c| c.is_whitespace() || c == ',')
        .then(|| Edit { span: Span::new(entry.key_span.start, next.key_span.start), replacement: String::new() })
}

/// Whether `node` is a map with any of `keys`.
fn entries_have_any(node: &Node, keys: &[&str]) -> bool {
    match &node.kind {
        NodeKind::Map(pairs) => {
            pairs.iter().any(|(k, _)| k.as_scalar().is_some_and(|s| keys.contains(&s.value.as_str())))
        }
        _ => true, // not a map: already reported
    }
}
