//! Stage 3: the checks a scenario must pass before any evaluator reads it,
//! and the assembly of the file from its items.
//!
//! Per item (called from the grammar's actions): octal modes, verdicts
//! (`allow` alone, no repeated action, no empty or repeated selector),
//! selector names. Across items ([`assemble`]): one `policy` before any
//! step, unique container names (`host` reserved), fields at most once
//! (except `label`, `volume`, `file`, whose keys and paths are unique
//! instead), and every `in` naming a declared container or `host`.
//! Whether files exist and what the policy decides are the evaluators' to
//! check.

use std::collections::{HashMap, HashSet};

use crate::ast::{Action, ContainerDecl, ContainerField, ScenarioFile, Span, Spanned, Step, Verdict};
use crate::error::{edit_distance, ScenarioError};

/// The name of the place that is not a container.
pub const HOST: &str = "host";

/// The largest mode: permission bits with setuid, setgid and sticky.
pub const MAX_MODE: u32 = 0o7777;

/// Beyond this many containers, an unknown one gets no "did you mean".
const MAX_SUGGESTION_CANDIDATES: usize = 64;

/// Names longer than this get no "did you mean" (edit distance is quadratic).
pub(crate) const MAX_SUGGESTION_LEN: usize = 64;

/// One top-level item, as the grammar reads it.
#[derive(Debug)]
pub(crate) enum Item {
    Policy(Spanned<String>),
    Container(ContainerDecl),
    /// Boxed: a step is several times the size of the other items.
    Step(Box<Step>),
    /// A syntax error, already reported.
    Error,
}

/// An action word of a verdict, `allow` included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Word {
    Allow,
    Action(Action),
}

impl Word {
    fn keyword(self) -> &'static str {
        match self {
            Word::Allow => "allow",
            Word::Action(action) => action.keyword(),
        }
    }
}

/// Reads an octal mode. An invalid one is reported and reads as 0.
pub(crate) fn mode(errors: &mut Vec<ScenarioError>, written: &str, span: Span) -> Spanned<u32> {
    let digits = written.strip_prefix('0').filter(|d| !d.is_empty());
    let value = match digits {
        Some(d) if d.bytes().all(|b| (b'0'..=b'7').contains(&b)) => {
            // Too many digits for a u32 is out of range too.
            match u32::from_str_radix(d, 8) {
                Ok(value) if value <= MAX_MODE => value,
                _ => {
                    errors.push(ScenarioError::with_help(
                        span.clone(),
                        format!("mode `{written}` is out of range"),
                        "the largest mode is `07777`: permission bits, setuid, setgid and sticky",
                    ));
                    0
                }
            }
        }
        _ => {
            let help = if !written.is_empty() && written.bytes().all(|b| b.is_ascii_digit()) && digits.is_none() {
                if written == "0" {
                    "a mode is `0` followed by octal digits: write `00` for no permissions".to_owned()
                } else {
                    format!("a mode is written in octal with a leading `0`, such as `0{written}`")
                }
            } else {
                "a mode is `0` followed by octal digits (`0` to `7`), such as `0755`".to_owned()
            };
            errors.push(ScenarioError::with_help(span.clone(), format!("`{written}` is not an octal mode"), help));
            0
        }
    };
    Spanned::new(value, span)
}

/// Checks a selector name against the policy's name syntax,
/// `[A-Za-z0-9][A-Za-z0-9_-]*`. The lexer guarantees everything but the first character.
pub(crate) fn selector(errors: &mut Vec<ScenarioError>, name: Spanned<String>) -> Spanned<String> {
    if !name.value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        errors.push(ScenarioError::with_help(
            name.span.clone(),
            format!("`{}` is not a selector name", name.value),
            "a selector name starts with a letter or a digit",
        ));
    }
    name
}

/// Builds a verdict from its words and optional selector list (with the
/// span of its brackets), reporting what cannot be meant.
pub(crate) fn verdict(
    errors: &mut Vec<ScenarioError>,
    words: Vec<Spanned<Word>>,
    selectors: Option<(Span, Vec<Spanned<String>>)>,
) -> Verdict {
    let mut seen: Vec<Word> = Vec::new();
    let mut actions: Vec<Spanned<Action>> = Vec::new();
    let mut allow: Option<Span> = None;
    for word in words {
        if seen.contains(&word.value) {
            errors.push(ScenarioError::with_help(
                word.span,
                format!("`{}` is given twice", word.value.keyword()),
                "a verdict names each action once",
            ));
            continue;
        }
        seen.push(word.value);
        match word.value {
            Word::Allow => allow = Some(word.span),
            Word::Action(action) => actions.push(Spanned::new(action, word.span)),
        }
    }
    if let Some(span) = &allow {
        if !actions.is_empty() {
            errors.push(ScenarioError::with_help(
                span.clone(),
                "`allow` cannot be combined with actions",
                "`allow` means no response fires: write either `allow` alone or the actions",
            ));
        }
    }
    let selectors = selectors.map(|(brackets, names)| {
        if names.is_empty() {
            errors.push(ScenarioError::with_help(
                brackets.clone(),
                "empty selector list",
                "list the selectors that match, or leave out `[]`",
            ));
        }
        if allow.is_some() && actions.is_empty() {
            errors.push(ScenarioError::with_help(
                brackets,
                "`allow` takes no selector list",
                "`allow` means no response fires, so nothing reports a selector",
            ));
        }
        let mut seen: HashSet<String> = HashSet::with_capacity(names.len());
        let mut unique: Vec<Spanned<String>> = Vec::with_capacity(names.len());
        for name in names {
            if !seen.insert(name.value.clone()) {
                errors.push(ScenarioError::with_help(
                    name.span,
                    format!("selector `{}` is given twice", name.value),
                    "the selector list is a set: name each selector once",
                ));
            } else {
                unique.push(name);
            }
        }
        unique
    });
    if allow.is_some() && actions.is_empty() {
        Verdict::Allow
    } else {
        Verdict::Actions { actions, selectors }
    }
}

/// Line numbers for messages, found by binary search so that many errors
/// in a long file cost no more than one pass over it.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        Lines(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i).collect())
    }

    /// The 1-based line of byte `offset`.
    fn of(&self, offset: usize) -> usize {
        self.0.partition_point(|&newline| newline < offset) + 1
    }
}

/// Assembles the file from its items and runs the cross-item checks.
pub(crate) fn assemble(text: &str, items: Vec<Item>, errors: &mut Vec<ScenarioError>) -> ScenarioFile {
    let lines = Lines::new(text);
    let mut file = ScenarioFile::default();
    // Name to the span of its first declaration.
    let mut declared: HashMap<String, Span> = HashMap::new();
    for item in items {
        match item {
            Item::Policy(policy) => {
                if let Some(first) = &file.policy {
                    errors.push(ScenarioError::with_help(
                        policy.span,
                        format!("`policy` is given twice (first on line {})", lines.of(first.span.start)),
                        "a scenario tests exactly one policy",
                    ));
                } else {
                    if let Some(step) = file.steps.first() {
                        errors.push(ScenarioError::with_help(
                            policy.span.clone(),
                            format!("`policy` comes after the first step (on line {})", lines.of(step.span.start)),
                            "move `policy` before the first `in`",
                        ));
                    }
                    file.policy = Some(policy);
                }
            }
            Item::Container(container) => {
                check_fields(&lines, &container, errors);
                let name = &container.name;
                if name.value == HOST {
                    errors.push(ScenarioError::with_help(
                        name.span.clone(),
                        "`host` is reserved",
                        "`in host` runs an operation outside any container; give this container another name",
                    ));
                } else if let Some(first) = declared.get(&name.value) {
                    errors.push(ScenarioError::with_help(
                        name.span.clone(),
                        format!(
                            "container `{}` is declared twice (first on line {})",
                            name.value,
                            lines.of(first.start)
                        ),
                        "give each container its own name",
                    ));
                } else {
                    declared.insert(name.value.clone(), name.span.clone());
                }
                file.containers.push(container);
            }
            Item::Step(step) => file.steps.push(*step),
            Item::Error => {}
        }
    }
    for step in &file.steps {
        let name = &step.container;
        if name.value != HOST && !declared.contains_key(&name.value) {
            // Suggestions compare with every container: only for a file of a
            // sensible size, so that hostile input stays linear.
            let nearest = declared
                .keys()
                .take(if declared.len() <= MAX_SUGGESTION_CANDIDATES { declared.len() } else { 0 })
                .filter(|k| k.len() <= MAX_SUGGESTION_LEN && name.value.len() <= MAX_SUGGESTION_LEN)
                .map(|k| (edit_distance(&name.value, k), k))
                .filter(|(d, k)| *d <= (k.chars().count() / 3).max(1))
                .min();
            let help = match nearest {
                Some((_, k)) => format!("did you mean `{k}`?"),
                None => format!("declare it with `container {} {{ ... }}`, or run the step `in host`", name.value),
            };
            errors.push(ScenarioError::with_help(
                name.span.clone(),
                format!("unknown container `{}`", name.value),
                help,
            ));
        }
    }
    if file.policy.is_none() {
        errors.push(ScenarioError::with_help(
            0..0,
            "the scenario names no policy",
            "start it with `policy \"path/to/policy.yaml\"`, relative to the scenario file",
        ));
    }
    file
}

/// Fields at most once, except `label` (unique keys), `volume`, `volume
/// file` and `file` (unique paths).
fn check_fields(lines: &Lines, container: &ContainerDecl, errors: &mut Vec<ScenarioError>) {
    // (field keyword, key) to the span of its first use.
    let mut seen: HashMap<(&str, &str), &Span> = HashMap::new();
    for field in &container.fields {
        let keyword = field.value.keyword();
        let (key, what) = match &field.value {
            ContainerField::Label { key, .. } => (key.as_str(), format!("label `{key}`")),
            ContainerField::Volume(path) | ContainerField::VolumeFile(path) => {
                (path.as_str(), format!("{keyword} `{path}`"))
            }
            // A path is a file or a directory: `file` and `dir` share keys.
            ContainerField::File { path, .. } | ContainerField::Dir { path, .. } => {
                (path.as_str(), format!("{keyword} `{path}`"))
            }
            _ => ("", format!("`{keyword}`")),
        };
        // A path is one mount: `volume` and `volume file` share their keys.
        let kind = match keyword {
            "volume file" => "volume",
            "dir" => "file",
            _ => keyword,
        };
        if let Some(first) = seen.get(&(kind, key)) {
            errors.push(ScenarioError::with_help(
                field.span.clone(),
                format!(
                    "{what} is given twice in container `{}` (first on line {})",
                    container.name.value,
                    lines.of(first.start)
                ),
                "remove one of them",
            ));
        } else {
            seen.insert((kind, key), &field.span);
        }
    }
}
