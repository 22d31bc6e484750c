//! Stage 3: the AST to the checked model, with every semantic rule.
//!
//! Input: a [`Policy`] AST. Output: a [`CheckedPolicy`] (the best reading of
//! the policy, also when it has errors) and diagnostics for: names
//! (`D4C0013`, `D4C0014`), conditions (`D4C0015`..`D4C0023`, and values no
//! normalised metadata can hold, `D4C0038`), references
//! (`D4C0024`..`D4C0026`), actions and responses (`D4C0027`..`D4C0032`),
//! capacity (`D4C0033`), network values (`D4C0043`) and the `network:`
//! section that cannot be compiled yet (`D4C0044`).
//!
//! Cost: linear in the size of the policy, except `response-never-fires`,
//! which compares each response's match selectors with its own excludes
//! (the product of two lists the user wrote in one response).

use crate::ast::{
    Condition, ConditionKey, ConditionValue, Policy, PolicyKind, Response, Section, Selector, Value, ValueSyntax,
};
use crate::codes::Code;
use crate::diag::{Diagnostic, Diagnostics, Edit, Fix};
use crate::limits::{
    MAX_COMPONENT_BYTES, MAX_PATH_BYTES, MAX_PATH_PATTERNS, MAX_PATH_PREFIXES, MAX_PREFIX_LENS, MAX_PROCESS_NAME_BYTES,
    MAX_RESPONSES_PER_TYPE, MAX_SELECTORS_PER_TYPE, MAX_SELECTOR_NAME_BYTES, MAX_VALUE_BYTES,
};
use crate::model::{Actions, CheckedPolicy, Operation, ResponseModel, RuleSet, SelectorModel, Values};
use crate::seen::FirstSeen;
use crate::span::Span;
use crate::suggest::did_you_mean;
use d4c_artifact::net::{Cidr, PortRange, Transport};
use d4c_artifact::normalize::{self, Unmatchable};
use d4c_artifact::patterns::{LabelPattern, PathPattern, PatternError, TextPattern};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Checks `policy`. `text` is the source its spans point into (for fixes).
pub fn check_policy(policy: &Policy, text: &str, diagnostics: &mut Diagnostics) -> CheckedPolicy {
    // Names of every kind first: a response may wrongly name a selector of
    // another kind, and the message should say so.
    // Ordered by kind: a name defined in two other sections is reported as
    // the first one's, the same on every run.
    let names: BTreeMap<PolicyKind, HashMap<&str, usize>> =
        policy.sections.iter().map(|section| (section.kind, name_table(section, diagnostics))).collect();
    let mut checked = CheckedPolicy { version: policy.version.as_ref().map(|v| v.value.clone()), ..Default::default() };
    let mut path_patterns: HashSet<PathPattern> = HashSet::new();
    let mut first_path_over_limit: Option<Span> = None;
    for section in &policy.sections {
        let empty = HashMap::new();
        let own = names.get(&section.kind).unwrap_or(&empty);
        let others: Vec<(PolicyKind, &HashMap<&str, usize>)> =
            names.iter().filter(|(k, _)| **k != section.kind).map(|(k, n)| (*k, n)).collect();
        let mut checker = SectionChecker {
            kind: section.kind,
            selectors_complete: section.selectors_complete,
            suggested: HashSet::new(),
            text,
            diagnostics: &mut *diagnostics,
            names: own,
            other_names: &others,
        };
        let rules = checker.section(section);
        prefix_lengths(section, &rules, diagnostics);
        for (selector, model) in section.selectors.iter().zip(&rules.selectors) {
            for (key, values) in &model.conditions {
                if let Values::Paths(paths) = values {
                    for path in paths {
                        if path_patterns.insert(path.clone()) && path_patterns.len() == MAX_PATH_PATTERNS + 1 {
                            first_path_over_limit = selector.condition(*key).map(|c| c.key_span);
                        }
                    }
                }
            }
        }
        *checked.rules_mut(section.kind) = rules;
        if section.kind == PolicyKind::Network {
            not_compiled(section, diagnostics);
        }
    }
    if let Some(at) = first_path_over_limit {
        diagnostics.push(
            Diagnostic::new(
                Code::LimitExceeded,
                at,
                format!(
                    "the policy has {} distinct path patterns; d4c's tables hold {MAX_PATH_PATTERNS}",
                    path_patterns.len()
                ),
            )
            .label(format!("pattern {} is written here", MAX_PATH_PATTERNS + 1))
            .help("merge patterns into directory wildcards (`/dir/*`, `/dir/**`), or split the policy"),
        );
    }
    path_prefixes(policy, &checked, diagnostics);
    checked
}

/// `D4C0044`: a `network:` section is checked in full (every rule above
/// applies to it), but the decision tables and the kernel's socket hooks
/// that would enforce it are not built yet (issue 15). Refusing it here
/// keeps `d4cc compile` from writing an artifact that silently drops rules.
fn not_compiled(section: &Section, diagnostics: &mut Diagnostics) {
    diagnostics.push(
        Diagnostic::new(
            Code::NetworkNotCompiled,
            section.key_span,
            format!(
                "this version of d4c checks `network:` rules but cannot enforce them: {} would be dropped",
                match section.selectors.len() {
                    0 => "the section".to_string(),
                    1 => "the selector here".to_string(),
                    n => format!("the {n} selectors here"),
                }
            ),
        )
        .label("checked, not compiled")
        .help("deploy the file and process sections without it; `d4cc lint` still reports every other problem of this section"),
    );
}

/// `D4C0033`: the path automaton holds [`MAX_PATH_PREFIXES`] distinct path
/// prefixes (issue 14, fault 10). Counted without a map (see
/// [`crate::lower::path_prefixes`]); only a policy over the limit is walked
/// again, in the order written, to say where it crosses it.
fn path_prefixes(policy: &Policy, checked: &CheckedPolicy, diagnostics: &mut Diagnostics) {
    let prefixes = crate::lower::path_prefixes(checked);
    if prefixes <= MAX_PATH_PREFIXES {
        return;
    }
    let mut counter = crate::lower::PrefixCounter::default();
    let mut at = None;
    'sections: for section in &policy.sections {
        let rules = checked.rules(section.kind);
        for (selector, model) in section.selectors.iter().zip(&rules.selectors) {
            for (key, values) in &model.conditions {
                let patterns: Vec<(u8, PathPattern)> = match (section.kind, key, values) {
                    (PolicyKind::File, ConditionKey::TargetFilePath, Values::Paths(paths)) => {
                        paths.iter().map(|p| (0, p.clone())).collect()
                    }
                    (PolicyKind::Process, ConditionKey::ProcessExecutable, Values::Paths(paths)) => {
                        paths.iter().map(|p| (1, p.clone())).collect()
                    }
                    (PolicyKind::Process, ConditionKey::ProcessName, Values::Text(names)) => {
                        names.iter().map(|n| (2, crate::lower::name_pattern(n))).collect()
                    }
                    _ => continue,
                };
                for (dimension, pattern) in &patterns {
                    if counter.add(*dimension, pattern) > MAX_PATH_PREFIXES {
                        at = selector.condition(*key).map(|c| c.key_span);
                        break 'sections;
                    }
                }
            }
        }
    }
    let Some(at) = at.or_else(|| policy.sections.first().map(|s| s.key_span)) else { return };
    diagnostics.push(
        Diagnostic::new(
            Code::LimitExceeded,
            at,
            format!(
                "the path patterns have {prefixes} distinct prefixes (`/a`, `/a/b` and `/a/b/c` of `/a/b/c`); d4c's path automaton holds {MAX_PATH_PREFIXES}"
            ),
        )
        .label(format!("prefix {} is added here", MAX_PATH_PREFIXES + 1))
        .help("match deep paths with directory wildcards (`/dir/*`, `/dir/**`) or `prefix*` patterns, or split the policy"),
    );
}

/// `D4C0033`: the decision tables try at most [`MAX_PREFIX_LENS`] distinct
/// lengths of `prefix*` patterns per directory (per dimension: file paths,
/// executables, process names, which all live in the root "directory").
fn prefix_lengths(section: &Section, rules: &RuleSet, diagnostics: &mut Diagnostics) {
    let mut lengths: HashMap<(ConditionKey, String), (Vec<usize>, bool)> = HashMap::new();
    for (selector, model) in section.selectors.iter().zip(&rules.selectors) {
        for (key, values) in &model.conditions {
            let prefixes: Vec<(String, usize)> = match values {
                Values::Paths(paths) => paths
                    .iter()
                    .filter_map(|p| match p {
                        PathPattern::Prefix(text) => {
                            text.rsplit_once('/').map(|(dir, partial)| (dir.to_string(), partial.len()))
                        }
                        _ => None,
                    })
                    .filter(|(_, len)| *len > 0)
                    .collect(),
                Values::Text(names) if *key == ConditionKey::ProcessName => names
                    .iter()
                    .filter_map(|n| match n {
                        TextPattern::Prefix(p) if !p.is_empty() => Some((String::new(), p.len())),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for (dir, len) in prefixes {
                let (seen, reported) = lengths.entry((*key, dir.clone())).or_default();
                if !seen.contains(&len) {
                    seen.push(len);
                }
                if seen.len() > MAX_PREFIX_LENS && !*reported {
                    *reported = true;
                    let Some(at) = selector.condition(*key).map(|c| c.key_span) else { continue };
                    let place = if *key == ConditionKey::ProcessName {
                        "process names".to_string()
                    } else {
                        format!("`{dir}/`")
                    };
                    diagnostics.push(
                        Diagnostic::new(
                            Code::LimitExceeded,
                            at,
                            format!(
                                "the `{}` patterns ending in `*` in {place} have {} different lengths; d4c's tables try at most {MAX_PREFIX_LENS} per directory",
                                key.key(),
                                seen.len()
                            ),
                        )
                        .label("the next length is added here")
                        .help("use `/dir/*` or `/dir/**`, or fewer distinct prefix lengths"),
                    );
                }
            }
        }
    }
}

/// Maps each selector name of `section` to the index of its first
/// definition, reporting invalid and duplicate names.
fn name_table<'p>(section: &'p Section, diagnostics: &mut Diagnostics) -> HashMap<&'p str, usize> {
    let mut table: HashMap<&str, usize> = HashMap::new();
    for (index, selector) in section.selectors.iter().enumerate() {
        let Some(name) = &selector.name else { continue };
        check_name(name, diagnostics);
        match table.get(name.text.as_str()) {
            Some(&first) => {
                let mut diagnostic = Diagnostic::new(
                    Code::DuplicateName,
                    name.span,
                    format!("a {} selector named `{}` is already defined", section.kind.as_str(), name.text),
                )
                .label("defined again here")
                .help("give each selector its own name; responses could not tell them apart");
                if let Some(first_name) = section.selectors.get(first).and_then(|s| s.name.as_ref()) {
                    diagnostic = diagnostic.secondary(first_name.span, "first defined here");
                }
                diagnostics.push(diagnostic);
            }
            None => {
                table.insert(&name.text, index);
            }
        }
    }
    table
}

/// `^[a-z0-9][a-z0-9_-]*$` (any case), at most `MAX_SELECTOR_NAME_BYTES`.
fn check_name(name: &Value, diagnostics: &mut Diagnostics) {
    let text = &name.text;
    let bad = text.char_indices().find(|&(i, c)| {
        let ok = c.is_ascii_alphanumeric() || (i > 0 && (c == '_' || c == '-'));
        !ok
    });
    if let Some((at, c)) = bad {
        let what = if at == 0 { "start with" } else { "contain" };
        let shown = match c {
            ' ' => "a space".to_string(),
            '\t' => "a tab".to_string(),
            c if c.is_control() || c.is_whitespace() => format!("U+{:04X}", u32::from(c)),
            c => format!("`{c}`"),
        };
        diagnostics.push(
            Diagnostic::new(
                Code::InvalidName,
                name.sub_span(at..at + c.len_utf8()),
                format!("a selector name may not {what} {shown}"),
            )
            .label("not allowed here")
            .help("names are letters, digits, `_` and `-`, starting with a letter or digit"),
        );
    } else if text.len() > MAX_SELECTOR_NAME_BYTES {
        diagnostics.push(
            Diagnostic::new(
                Code::InvalidName,
                name.sub_span(MAX_SELECTOR_NAME_BYTES..text.len()),
                format!("the selector name is {} bytes; names may be at most {MAX_SELECTOR_NAME_BYTES}", text.len()),
            )
            .label("past the limit")
            .help("shorten the name"),
        );
    }
}

struct SectionChecker<'a, 'p> {
    kind: PolicyKind,
    /// Whether every selector of this kind was read (else unknown names
    /// may be defined in what could not be read).
    selectors_complete: bool,
    /// Names suggested for undefined references: probably meant, so not
    /// reported as unused.
    suggested: HashSet<&'p str>,
    text: &'a str,
    diagnostics: &'a mut Diagnostics,
    names: &'a HashMap<&'p str, usize>,
    /// The names of the other kinds' selectors.
    other_names: &'a [(PolicyKind, &'a HashMap<&'p str, usize>)],
}

/// A resolved reference to a selector from a response.
struct Reference<'v> {
    index: usize,
    value: &'v Value,
}

impl SectionChecker<'_, '_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn section(&mut self, section: &Section) -> RuleSet {
        let selectors: Vec<SelectorModel> = section.selectors.iter().map(|s| self.selector(s)).collect();
        let mut used = vec![false; selectors.len()];
        let mut seen_responses: HashMap<ResponseModel, Span> = HashMap::new();
        let mut responses = Vec::with_capacity(section.responses.len());
        for response in &section.responses {
            let before = self.diagnostics.len();
            let model = self.response(response, &section.selectors, &selectors);
            // A response with a dropped name or action is not what was
            // written: comparing it with others would mislead.
            let resolved = self.diagnostics.as_slice().get(before..).is_none_or(|new| {
                !new.iter().any(|d| {
                    matches!(d.code, Code::UndefinedSelector | Code::SelectorOfOtherType | Code::InvalidAction)
                })
            });
            for &i in model.matches.iter().chain(&model.excludes) {
                if let Some(u) = used.get_mut(i) {
                    *u = true;
                }
            }
            let at = response.matches.as_ref().map_or(Span::point(response.span.start), |m| m.span);
            if !model.matches.is_empty() && resolved {
                match seen_responses.get(&model) {
                    Some(&first) => self.push(
                        Diagnostic::new(Code::DuplicateResponse, at, "this response is the same as an earlier one")
                            .label("duplicate")
                            .secondary(first, "the same response")
                            .help("remove one; identical responses only repeat their actions"),
                    ),
                    None => {
                        seen_responses.insert(model.clone(), at);
                    }
                }
            }
            responses.push(model);
        }
        for ((selector, model), used) in section.selectors.iter().zip(&selectors).zip(used) {
            let Some(name) = &selector.name else { continue };
            // A later duplicate of a name is not the one responses use; it
            // is reported as a duplicate, not again as unused.
            let is_definition = self
                .names
                .get(name.text.as_str())
                .is_some_and(|&i| section.selectors.get(i).is_some_and(|s| std::ptr::eq(s, selector)));
            let suggested = self.suggested.contains(name.text.as_str());
            if !used && is_definition && !suggested && section.responses_complete {
                self.push(
                    Diagnostic::new(
                        Code::UnusedSelector,
                        name.span,
                        format!("the selector `{}` is not used by any response", model.name),
                    )
                    .label("unused")
                    .help("name it in a response's `match` or `exclude`, or remove it"),
                );
            }
        }
        self.capacity(section, selectors.len(), responses.len());
        RuleSet { selectors, responses }
    }

    fn capacity(&mut self, section: &Section, selectors: usize, responses: usize) {
        let kind = self.kind.as_str();
        if selectors > MAX_SELECTORS_PER_TYPE {
            let at =
                section.selectors.get(MAX_SELECTORS_PER_TYPE).map_or(section.key_span, |s| Span::point(s.span.start));
            self.push(
                Diagnostic::new(
                    Code::LimitExceeded,
                    at,
                    format!("the policy has {selectors} {kind} selectors; d4c's tables hold {MAX_SELECTORS_PER_TYPE}"),
                )
                .label(format!("selector {} starts here", MAX_SELECTORS_PER_TYPE + 1))
                .help("merge selectors that share conditions, or split the policy"),
            );
        }
        if responses > MAX_RESPONSES_PER_TYPE {
            let at =
                section.responses.get(MAX_RESPONSES_PER_TYPE).map_or(section.key_span, |r| Span::point(r.span.start));
            self.push(
                Diagnostic::new(
                    Code::LimitExceeded,
                    at,
                    format!("the policy has {responses} {kind} responses; d4c's tables hold {MAX_RESPONSES_PER_TYPE}"),
                )
                .label(format!("response {} starts here", MAX_RESPONSES_PER_TYPE + 1))
                .help("merge responses with the same actions, or split the policy"),
            );
        }
    }

    // ---- selectors -----------------------------------------------------

    fn selector(&mut self, selector: &Selector) -> SelectorModel {
        let name = selector.name.as_ref().map_or_else(String::new, |n| n.text.clone());
        let mut conditions = Vec::with_capacity(selector.conditions.len());
        for condition in &selector.conditions {
            if let Some(values) = self.condition(condition) {
                conditions.push((condition.key, values));
            }
        }
        conditions.sort_by_key(|(k, _)| *k);
        // `ignoreVolumeMounts: false` and `ignoreVolumeFiles: false` are
        // written conditions that restrict nothing.
        let restricts_nothing = selector
            .conditions
            .iter()
            .all(|c| matches!(c.value, ConditionValue::Bool(false)) && c.key != ConditionKey::SessionLeaderInteractive);
        if restricts_nothing && !selector.had_unreadable_keys {
            let at = selector.name.as_ref().map_or(Span::point(selector.span.start), |n| n.span);
            let example = match self.kind {
                PolicyKind::File => "`operation` or `targetFilePath`",
                PolicyKind::Process => "`operation` or `processExecutable`",
                PolicyKind::Network => "`operation` or `destinationAddress`",
            };
            let what =
                if selector.conditions.is_empty() { "has no condition" } else { "has only conditions set to `false`" };
            self.push(
                Diagnostic::new(
                    Code::NoConditions,
                    at,
                    format!("the selector `{name}` {what}, so it would match every {} operation", self.kind.as_str()),
                )
                .label("matches everything")
                .help(format!("add a condition such as {example}")),
            );
        }
        self.exclusive(selector);
        self.unsatisfiable(selector);
        self.transport_unsatisfiable(selector);
        SelectorModel { name, conditions }
    }

    fn exclusive(&mut self, selector: &Selector) {
        const PAIRS: &[(ConditionKey, ConditionKey, &str)] = &[
            (
                ConditionKey::ContainerImageFullName,
                ConditionKey::ContainerImageName,
                "a full image name already names the repository",
            ),
            (
                ConditionKey::IgnoreVolumeMounts,
                ConditionKey::IgnoreVolumeFiles,
                "ignoring every volume mount already ignores mounted files",
            ),
            (ConditionKey::ProcessExecutable, ConditionKey::ProcessName, "an executable's path already fixes its name"),
        ];
        for &(a, b, why) in PAIRS {
            if let (Some(first), Some(second)) = (selector.condition(a), selector.condition(b)) {
                let (first, second) =
                    if first.key_span.start <= second.key_span.start { (first, second) } else { (second, first) };
                self.push(
                    Diagnostic::new(
                        Code::ExclusiveConditions,
                        second.key_span,
                        format!(
                            "`{}` and `{}` may not be used in the same selector",
                            first.key.key(),
                            second.key.key()
                        ),
                    )
                    .label("second of the pair")
                    .secondary(first.key_span, "first of the pair")
                    .help(format!("{why}: keep one, or split the selector in two")),
                );
            }
        }
    }

    /// `D4C0022` for a network selector whose operations and transports
    /// exclude each other: only TCP sockets listen, and `sendTo` is a
    /// datagram's (a TCP send with an address, TCP Fast Open, is decided as
    /// the `connect` it is).
    fn transport_unsatisfiable(&mut self, selector: &Selector) {
        if self.kind != PolicyKind::Network {
            return;
        }
        let (Some(ops), Some(transports)) =
            (selector.condition(ConditionKey::Operation), selector.condition(ConditionKey::Transport))
        else {
            return;
        };
        fn names(c: &Condition) -> Vec<&str> {
            match &c.value {
                ConditionValue::List(values) => values.iter().map(|v| v.text.as_str()).collect(),
                ConditionValue::Bool(_) => Vec::new(),
            }
        }
        let (op_names, transport_names) = (names(ops), names(transports));
        let possible = |op: &str| match op {
            "listen" => transport_names.contains(&"tcp"),
            "sendTo" => transport_names.contains(&"udp"),
            _ => true,
        };
        let known = |op: &&str| Operation::from_name(op).is_some_and(|o| o.kind() == PolicyKind::Network);
        if op_names.is_empty() || !op_names.iter().all(known) || op_names.iter().any(|op| possible(op)) {
            return;
        }
        if !transport_names.iter().all(|t| Transport::parse(t).is_ok()) {
            return;
        }
        let name = selector.name.as_ref().map_or("", |n| n.text.as_str());
        self.push(
            Diagnostic::new(
                Code::UnsatisfiableSelector,
                transports.key_span,
                format!(
                    "the selector `{name}` can never match: {} with `transport: [{}]` never happens",
                    backticked(&op_names),
                    transport_names.join(", ")
                ),
            )
            .label("no socket does this")
            .secondary(ops.key_span, "operations")
            .help(
                "only TCP sockets `listen`, and `sendTo` is a UDP datagram's (a TCP send to an address is a `connect`)",
            ),
        );
    }

    /// `D4C0023`: two values of `destinationAddress` written differently
    /// that are the same block (`192.0.2.7` and `192.0.2.7/32`, or a block
    /// and its IPv4-mapped IPv6 form). A value written exactly as an
    /// earlier one is `duplicate_values`' finding, not reported again.
    fn same_block_twice(&mut self, values: &[Value]) {
        let mut seen: Vec<(Cidr, &Value)> = Vec::new();
        let mut texts: HashSet<&str> = HashSet::new();
        for value in values {
            if !texts.insert(value.text.as_str()) {
                continue;
            }
            let Ok(block) = Cidr::parse(&value.text) else { continue };
            match seen.iter().find(|(b, _)| *b == block) {
                Some((_, first)) => self.push(
                    Diagnostic::new(
                        Code::DuplicateValue,
                        value.span,
                        format!("`{}` is the block `{block}`, already listed as `{}`", value.text, first.text),
                    )
                    .label("the same addresses")
                    .secondary(first.span, "first listed here")
                    .help(
                        "remove one (an address is its /32 or /128 block; an IPv4-mapped IPv6 block is its IPv4 block)",
                    ),
                ),
                None => seen.push((block, value)),
            }
        }
    }

    /// `processName` values longer than the kernel's comm can never match:
    /// each is reported (`D4C0020`); when no value can match, the selector
    /// can never match (`D4C0022`), which is reported instead.
    fn unsatisfiable(&mut self, selector: &Selector) {
        let Some(Condition { value: ConditionValue::List(values), key_span, .. }) =
            selector.condition(ConditionKey::ProcessName)
        else {
            return;
        };
        let name_len = |v: &Value| v.text.strip_suffix('*').unwrap_or(&v.text).len();
        let too_long: Vec<&Value> = values.iter().filter(|v| name_len(v) > MAX_PROCESS_NAME_BYTES).collect();
        if !too_long.is_empty() && too_long.len() == values.len() {
            let name = selector.name.as_ref().map_or("", |n| n.text.as_str());
            let mut diagnostic = Diagnostic::new(
                Code::UnsatisfiableSelector,
                *key_span,
                format!(
                    "the selector `{name}` can never match: every `processName` is longer than the kernel's {MAX_PROCESS_NAME_BYTES}-byte process name"
                ),
            )
            .label("no process has such a name")
            .help("match the full path with `processExecutable` instead");
            for value in too_long {
                let len = name_len(value);
                diagnostic = diagnostic.secondary(value.sub_span(past_comm(&value.text)..len), format!("{len} bytes"));
            }
            self.push(diagnostic);
            return;
        }
        for value in too_long {
            let len = name_len(value);
            self.push(
                Diagnostic::new(
                    Code::ValueTooLong,
                    value.sub_span(past_comm(&value.text)..len),
                    format!(
                        "`{}` is {len} bytes, but the kernel keeps only the first {MAX_PROCESS_NAME_BYTES} bytes of a process name",
                        value.text
                    ),
                )
                .label("never matches")
                .help("match the full path with `processExecutable` instead"),
            );
        }
    }

    /// Parses one condition's values, reporting bad ones; `None` when none
    /// is usable.
    fn condition(&mut self, condition: &Condition) -> Option<Values> {
        let values = match &condition.value {
            ConditionValue::Bool(flag) => {
                let meaningful = *flag || condition.key == ConditionKey::SessionLeaderInteractive;
                return meaningful.then_some(Values::Flag(*flag));
            }
            ConditionValue::List(values) => values,
        };
        self.duplicate_values(values, &format_args!("`{}`", condition.key.key()));
        let before = self.diagnostics.len();
        let parsed = match condition.key.syntax() {
            ValueSyntax::Operation => Values::Operations(self.operations(values)),
            ValueSyntax::Path => {
                let fitting: Vec<Value> = values.iter().filter(|v| self.components_fit(v)).cloned().collect();
                Values::Paths(self.parse_all(
                    &fitting,
                    MAX_PATH_BYTES,
                    Code::InvalidPathPattern,
                    PathPattern::parse,
                    |_, _| None,
                ))
            }
            ValueSyntax::Label => Values::Labels(self.parse_all(
                values,
                MAX_VALUE_BYTES,
                Code::InvalidLabelPattern,
                LabelPattern::parse,
                |_, label| normalize::unmatchable_label(label),
            )),
            // Flags are read as booleans by the syntax stage, never as lists.
            ValueSyntax::Flag => return None,
            ValueSyntax::Text(text_syntax) => Values::Text(self.parse_all(
                values,
                MAX_VALUE_BYTES,
                Code::InvalidValuePattern,
                |v| TextPattern::parse(v, text_syntax),
                |written, pattern| normalize::unmatchable(text_syntax, written, pattern),
            )),
            ValueSyntax::Address => {
                let blocks =
                    self.parse_all(values, MAX_VALUE_BYTES, Code::InvalidNetworkValue, Cidr::parse, |_, _| None);
                self.same_block_twice(values);
                Values::Addresses(blocks)
            }
            ValueSyntax::Port => Values::Ports(self.parse_all(
                values,
                MAX_VALUE_BYTES,
                Code::InvalidNetworkValue,
                PortRange::parse,
                |_, _| None,
            )),
            ValueSyntax::Transport => Values::Transports(self.parse_all(
                values,
                MAX_VALUE_BYTES,
                Code::InvalidNetworkValue,
                Transport::parse,
                |_, _| None,
            )),
        };
        let empty = parsed.is_empty();
        // A condition whose every value can never match matches nothing:
        // kept empty, so that later rules do not read it as no condition.
        let unmatchable = self
            .diagnostics
            .as_slice()
            .get(before..)
            .is_some_and(|new| new.iter().any(|d| d.code == Code::UnmatchableValue));
        (!empty || unmatchable).then_some(parsed)
    }

    /// Whether every component of a path value fits `NAME_MAX`; reports the
    /// first that does not (`D4C0020`): no path has such a component.
    fn components_fit(&mut self, value: &Value) -> bool {
        let mut at = 0;
        for component in value.text.split('/') {
            let len = component.trim_end_matches('*').len();
            if len > MAX_COMPONENT_BYTES {
                self.push(
                    Diagnostic::new(
                        Code::ValueTooLong,
                        value.sub_span(at..at + component.len()),
                        format!(
                            "this path component is {len} bytes; a file name is at most {MAX_COMPONENT_BYTES} bytes"
                        ),
                    )
                    .label("no file has a name this long")
                    .help("check the path: Linux file names are at most 255 bytes (`NAME_MAX`)"),
                );
                return false;
            }
            at += component.len() + 1;
        }
        true
    }

    /// Parses each value with `parse`, reporting over-long values
    /// (`D4C0020`), syntax errors (`code`) and well-formed values that the
    /// runtime's normalised metadata can never hold (`D4C0038`, asked of
    /// `unmatchable`: `d4c_artifact::normalize`). Keeps the good ones,
    /// sorted and without duplicates.
    fn parse_all<T: Ord>(
        &mut self,
        values: &[Value],
        max_len: usize,
        code: Code,
        parse: impl Fn(&str) -> Result<T, PatternError>,
        unmatchable: impl Fn(&str, &T) -> Option<Unmatchable>,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(values.len());
        for value in values {
            if value.text.len() > max_len {
                self.push(
                    Diagnostic::new(
                        Code::ValueTooLong,
                        value.sub_span(max_len..value.text.len()),
                        format!("this value is {} bytes; the limit is {max_len}", value.text.len()),
                    )
                    .label("past the limit")
                    .help("shorten it; use a wildcard pattern if it names many things"),
                );
                continue;
            }
            match parse(&value.text) {
                Ok(pattern) => match unmatchable(&value.text, &pattern) {
                    None => out.push(pattern),
                    Some(u) => self.push(
                        Diagnostic::new(Code::UnmatchableValue, value.sub_span(u.at), u.message)
                            .label("never matches")
                            .help(u.help),
                    ),
                },
                Err(err) => {
                    let span = if err.at.is_empty() && !value.text.is_empty() && err.at.start >= value.text.len() {
                        // Something missing at the end: point at the last character.
                        let last = value.text.chars().next_back().map_or(0, char::len_utf8);
                        value.sub_span(value.text.len() - last..value.text.len())
                    } else {
                        value.sub_span(err.at.clone())
                    };
                    let mut diagnostic = Diagnostic::new(code, span, err.message).label("here");
                    if let Some(help) = err.help {
                        diagnostic = diagnostic.help(help);
                    }
                    self.push(diagnostic);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn operations(&mut self, values: &[Value]) -> Vec<Operation> {
        let own: Vec<&str> = Operation::ALL.iter().filter(|o| o.kind() == self.kind).map(|o| o.name()).collect();
        let mut out = Vec::with_capacity(values.len());
        for value in values {
            match Operation::from_name(&value.text) {
                Some(op) if op.kind() == self.kind => out.push(op),
                Some(op) => self.push(
                    Diagnostic::new(
                        Code::InvalidOperation,
                        value.span,
                        format!(
                            "`{}` is a {} operation, but this is a {} selector",
                            op.name(),
                            op.kind().as_str(),
                            self.kind.as_str()
                        ),
                    )
                    .label(format!("not a {} operation", self.kind.as_str()))
                    .help(format!("{} selectors take: {}", self.kind.as_str(), backticked(&own))),
                ),
                None => {
                    let help = match did_you_mean(&value.text, own.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("{} selectors take: {}", self.kind.as_str(), backticked(&own)),
                    };
                    self.push(
                        Diagnostic::new(
                            Code::InvalidOperation,
                            value.span,
                            format!("unknown operation `{}`", value.text),
                        )
                        .label("unknown operation")
                        .help(help),
                    );
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn duplicate_values(&mut self, values: &[Value], what: &dyn std::fmt::Display) {
        let mut first: FirstSeen<&str> = FirstSeen::new();
        for value in values {
            if let Some(at) = first.first(value.text.as_str(), value.span) {
                self.push(
                    Diagnostic::new(
                        Code::DuplicateValue,
                        value.span,
                        format!("`{}` is listed twice in {what}", value.text),
                    )
                    .label("listed again")
                    .secondary(at, "first listed here")
                    .help("remove one"),
                );
            }
        }
    }

    // ---- responses -----------------------------------------------------

    fn response(&mut self, response: &Response, asts: &[Selector], models: &[SelectorModel]) -> ResponseModel {
        let empty = Vec::new();
        let match_values = response.matches.as_ref().map_or(&empty, |m| &m.value);
        self.duplicate_values(match_values, &"`match`");
        self.duplicate_values(&response.excludes, &"`exclude`");
        let matches = self.resolve(match_values);
        let excludes = self.resolve(&response.excludes);
        let actions = self.actions(response);
        let model = ResponseModel { matches: sorted_indices(&matches), excludes: sorted_indices(&excludes), actions };
        if actions.contains(Actions::BLOCK) && self.kind == PolicyKind::File {
            self.file_blocks(&matches, &excludes, asts, models);
        }
        self.never_fires(response, &matches, &excludes, models);
        model
    }

    /// Resolves selector names, reporting unknown ones and those of the
    /// other type.
    fn resolve<'v>(&mut self, values: &'v [Value]) -> Vec<Reference<'v>> {
        let mut out = Vec::with_capacity(values.len());
        for value in values {
            if let Some(&index) = self.names.get(value.text.as_str()) {
                out.push(Reference { index, value });
            } else if let Some((other, _)) =
                self.other_names.iter().find(|(_, names)| names.contains_key(value.text.as_str()))
            {
                let other = other.as_str();
                self.push(
                    Diagnostic::new(Code::SelectorOfOtherType, value.span, format!("`{}` is a {other} selector; a {} response can only use {} selectors", value.text, self.kind.as_str(), self.kind.as_str()))
                        .label(format!("a {other} selector"))
                        .help(format!("file, process and network events are decided apart: write a {} selector, or move this response under `{other}:`", self.kind.as_str())),
                );
            } else if self.selectors_complete {
                let help = match did_you_mean(&value.text, self.names.keys().copied()) {
                    Some(s) => {
                        self.suggested.insert(s);
                        format!("did you mean `{s}`?")
                    }
                    None => format!("define a {} selector named `{}`", self.kind.as_str(), value.text),
                };
                self.push(
                    Diagnostic::new(
                        Code::UndefinedSelector,
                        value.span,
                        format!("no {} selector is named `{}`", self.kind.as_str(), value.text),
                    )
                    .label("undefined")
                    .help(help),
                );
            }
        }
        out
    }

    fn actions(&mut self, response: &Response) -> Actions {
        let Some(values) = &response.actions else { return Actions::NONE };
        self.duplicate_values(&values.value, &"`actions`");
        let mut actions = Actions::NONE;
        let mut block_at = None;
        for value in &values.value {
            match Actions::from_name(&value.text) {
                Some(a) => {
                    if a == Actions::BLOCK {
                        block_at = Some(value);
                    }
                    actions = actions.union(a);
                }
                None => {
                    let blocking = ["deny", "drop", "kill", "prevent", "refuse", "reject", "stop"];
                    let help = match did_you_mean(&value.text, ["log", "alert", "block"]) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if blocking.contains(&value.text.to_lowercase().as_str()) => {
                            "to refuse the operation, write `actions: [alert, block]`".to_string()
                        }
                        None => "the actions are `log`, `alert` and `block`".to_string(),
                    };
                    self.push(
                        Diagnostic::new(Code::InvalidAction, value.span, format!("unknown action `{}`", value.text))
                            .label("unknown action")
                            .help(help),
                    );
                }
            }
        }
        if let Some(block) = block_at.filter(|_| !actions.contains(Actions::ALERT)) {
            let mut diagnostic =
                Diagnostic::new(Code::BlockWithoutAlert, block.span, "`block` needs `alert` in the same response")
                    .label("blocks without alerting")
                    .help("write `actions: [alert, block]`, so that every refused operation is reported");
            if let Some(fix) = insert_alert_before(self.text, block.span) {
                diagnostic = diagnostic.fix(fix);
            }
            self.push(diagnostic);
        }
        actions
    }

    /// `D4C0029` and `D4C0030`: what a blocking file response may block.
    fn file_blocks(
        &mut self,
        matches: &[Reference],
        excludes: &[Reference],
        asts: &[Selector],
        models: &[SelectorModel],
    ) {
        let exclude_has_path = excludes
            .iter()
            .any(|r| models.get(r.index).is_some_and(|m| m.condition(ConditionKey::TargetFilePath).is_some()));
        for reference in matches {
            let Some(model) = models.get(reference.index) else { continue };
            if !model.may_match_file_integrity() {
                continue;
            }
            let definition = asts.get(reference.index).and_then(|s| s.name.as_ref()).map(|n| n.span);
            match model.condition(ConditionKey::TargetFilePath) {
                None if !exclude_has_path => {
                    let ops = match model.operations() {
                        Some(ops) => backticked(
                            &ops.iter().filter(|o| o.is_file_integrity()).map(|o| o.name()).collect::<Vec<_>>(),
                        ),
                        None => "every file operation".to_string(),
                    };
                    let mut diagnostic = Diagnostic::new(Code::BlockWithoutPath, reference.value.span, format!("blocking {ops} on `{}` needs a `targetFilePath`", model.name))
                        .label("blocks file writes on any path")
                        .help(format!("add `targetFilePath` to `{}` (or an exclude with one), so that the block cannot stop every write in the container", model.name));
                    if let Some(at) = definition {
                        diagnostic = diagnostic.secondary(at, "selector defined here");
                    }
                    self.push(diagnostic);
                }
                Some(Values::Paths(paths)) if paths.iter().any(PathPattern::matches_everything) => {
                    let value_at = asts
                        .get(reference.index)
                        .and_then(|s| s.condition(ConditionKey::TargetFilePath))
                        .and_then(|c| match &c.value {
                            ConditionValue::List(values) => values
                                .iter()
                                .find(|v| PathPattern::parse(&v.text).is_ok_and(|p| p.matches_everything()))
                                .map(|v| v.span),
                            ConditionValue::Bool(_) => None,
                        });
                    let mut diagnostic = Diagnostic::new(Code::BlockEverything, reference.value.span, format!("this response blocks file changes on every path through `{}`", model.name))
                        .label("blocks writes anywhere")
                        .help("narrow `targetFilePath` to the directories that must not change; blocking all file writes can make the container unusable");
                    if let Some(at) = value_at {
                        diagnostic = diagnostic.secondary(at, "matches every path");
                    }
                    self.push(diagnostic);
                }
                _ => {}
            }
        }
    }

    /// `D4C0031`: every match is covered by an exclude.
    fn never_fires(
        &mut self,
        response: &Response,
        matches: &[Reference],
        excludes: &[Reference],
        models: &[SelectorModel],
    ) {
        if matches.is_empty() || excludes.is_empty() {
            return;
        }
        // Each covering exclude, with the names of the matches it covers.
        let mut covering: Vec<(Span, Vec<&str>)> = Vec::new();
        for m in matches {
            let Some(matched) = models.get(m.index) else { return };
            let cover = excludes
                .iter()
                .find(|e| models.get(e.index).is_some_and(|ex| e.index == m.index || ex.covers(matched)));
            match cover {
                Some(e) => match covering.iter_mut().find(|(span, _)| *span == e.value.span) {
                    Some((_, names)) => names.push(&m.value.text),
                    None => covering.push((e.value.span, vec![&m.value.text])),
                },
                None => return,
            }
        }
        let at = response.matches.as_ref().map_or(Span::point(response.span.start), |m| m.span);
        let mut diagnostic = Diagnostic::new(
            Code::ResponseNeverFires,
            at,
            "this response can never fire: everything it matches is excluded",
        )
        .label("never fires")
        .help("narrow the excludes, or remove the response");
        for (span, names) in covering {
            diagnostic = diagnostic.secondary(span, format!("excludes all of {}", backticked(&names)));
        }
        self.push(diagnostic);
    }
}

/// Where a process name's bytes past the kernel's [`MAX_PROCESS_NAME_BYTES`]
/// start, moved to the next character boundary (the kernel cuts bytes; a
/// span may not cut a character).
fn past_comm(text: &str) -> usize {
    (MAX_PROCESS_NAME_BYTES..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len())
}

fn sorted_indices(references: &[Reference]) -> Vec<usize> {
    let mut v: Vec<usize> = references.iter().map(|r| r.index).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn backticked(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// A fix that adds `alert` before the `block` at `block`: in a flow list
/// (`[block]`) as `alert, block`; in a block list (`- block`) as a new item.
fn insert_alert_before(text: &str, block: Span) -> Option<Fix> {
    let before = text.get(..block.start)?;
    // The item as written (`block`, `&b block`, or an alias `*b`) is kept:
    // an anchor on it stays where it was.
    let item = text.get(block.range())?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let prefix = before.get(line_start..)?;
    let replacement = if before.trim_end().ends_with(['[', ',']) {
        format!("alert, {item}")
    } else if prefix.trim_start().starts_with("- ") && prefix.trim_start().trim_start_matches("- ").trim().is_empty() {
        // Keep the file's line ending (CRLF files stay CRLF).
        let newline = if text.get(block.end..).is_some_and(|rest| rest.starts_with("\r\n")) { "\r\n" } else { "\n" };
        format!("alert{newline}{prefix}{item}")
    } else {
        return None;
    };
    Some(Fix { description: "add `alert` before `block`".to_string(), edits: vec![Edit { span: block, replacement }] })
}
