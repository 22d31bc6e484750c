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

use crate::ast::{
    Action, ContainerDecl, ContainerField, ScenarioFile, Span, Spanned, Step, UserRef, Verdict, PASSWD, ROOT,
};
use crate::error::{edit_distance, visible, ScenarioError};

/// The name of the place that is not a container.
pub const HOST: &str = "host";

/// The largest mode: permission bits with setuid, setgid and sticky.
pub const MAX_MODE: u32 = 0o7777;

/// The largest user id: `4294967295` is the kernel's "no user" (`(uid_t) -1`).
pub const MAX_USER_ID: u32 = u32::MAX - 1;

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

/// Reads a user id: decimal, no leading zero, at most [`MAX_USER_ID`]. An
/// invalid one is reported and reads as 0.
pub(crate) fn user_id(errors: &mut Vec<ScenarioError>, written: &str, span: Span) -> Spanned<u32> {
    let digits = !written.is_empty() && written.bytes().all(|b| b.is_ascii_digit());
    let value = if !digits {
        errors.push(ScenarioError::with_help(
            span.clone(),
            format!("`{written}` is not a user id"),
            format!("a user id is a decimal number from `0` to `{MAX_USER_ID}`"),
        ));
        0
    } else if written.len() > 1 && written.starts_with('0') {
        errors.push(ScenarioError::with_help(
            span.clone(),
            format!("user id `{written}` has a leading zero"),
            "a user id is written in decimal, without leading zeros",
        ));
        0
    } else {
        match written.parse::<u32>() {
            Ok(value) if value <= MAX_USER_ID => value,
            _ => {
                errors.push(ScenarioError::with_help(
                    span.clone(),
                    format!("user id `{written}` is out of range"),
                    format!("the largest user id is `{MAX_USER_ID}`: `4294967295` means no user"),
                ));
                0
            }
        }
    };
    Spanned::new(value, span)
}

/// Checks a declared user name as `/etc/passwd` can hold it: not empty, no
/// `:`, no control character (a newline would end the line).
pub(crate) fn user_name(errors: &mut Vec<ScenarioError>, name: Spanned<String>) -> Spanned<String> {
    if name.value.is_empty() || name.value.chars().any(|c| c == ':' || c.is_control()) {
        errors.push(ScenarioError::with_help(
            name.span.clone(),
            format!("`{}` is not a user name", visible(&name.value)),
            "a user name is not empty and has no `:` and no control character, as `/etc/passwd` holds it",
        ));
    }
    name
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
    // Name to the index of its first declaration in `file.containers`.
    let mut first: HashMap<String, usize> = HashMap::new();
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
                    first.insert(name.value.clone(), file.containers.len());
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
    for step in &file.steps {
        let container = first.get(&step.container.value).and_then(|&i| file.containers.get(i));
        check_user(step, container, errors);
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

/// A step's `user`: `in host` takes none; a name must be one the
/// container declares (`root` when it declares no users); an id other than
/// 0 needs declared users, so that `/etc/passwd` is known.
fn check_user(step: &Step, container: Option<&ContainerDecl>, errors: &mut Vec<ScenarioError>) {
    let Some(user) = &step.user else { return };
    if step.container.value == HOST {
        errors.push(ScenarioError::with_help(
            user.span.clone(),
            "`in host` takes no `user`",
            "operations on the host are not decided, whoever performs them: leave out `user`",
        ));
        return;
    }
    // An unknown container is reported already.
    let Some(container) = container else { return };
    let declares = container.users().next().is_some();
    match &user.value {
        UserRef::Name(name) if container.acting_user(Some(&user.value)).is_none() => {
            let known: Vec<String> = match container.passwd() {
                Some(passwd) => passwd.iter().map(|(n, _)| format!("`{}`", visible(n))).collect(),
                None => vec![format!("`{ROOT}`")],
            };
            errors.push(ScenarioError::with_help(
                user.span.clone(),
                format!("container `{}` declares no user `{}`", container.name.value, visible(name)),
                format!(
                    "no process runs as a name its container's `/etc/passwd` lacks: declare it with \
                     `user \"{}\" = ID` in the container (it names {})",
                    visible(name),
                    known.join(", ")
                ),
            ));
        }
        UserRef::Id(id) if *id != 0 && !declares => {
            errors.push(ScenarioError::with_help(
                user.span.clone(),
                format!("container `{}` declares no users, so user id `{id}` has no known name", container.name.value),
                "declare the container's users with `user \"NAME\" = ID`, so that the VM and the model \
                 agree on its `/etc/passwd`",
            ));
        }
        _ => {}
    }
}

/// Fields at most once, except `label` (unique keys), `volume`, `volume
/// file`, `file` and `dir` (unique paths) and `user` (unique names and
/// ids). `user` fields make `/etc/passwd`, so no other field may say what
/// is there.
fn check_fields(lines: &Lines, container: &ContainerDecl, errors: &mut Vec<ScenarioError>) {
    check_users(lines, container, errors);
    // (field keyword, key) to the span of its first use.
    let mut seen: HashMap<(&str, &str), &Span> = HashMap::new();
    for field in &container.fields {
        if let ContainerField::User { .. } = field.value {
            continue;
        }
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

/// `user` fields: names and ids unique, and no `file`, `dir` or `volume
/// file` at `/etc/passwd`, nor a `file` at `/etc`, beside them.
fn check_users(lines: &Lines, container: &ContainerDecl, errors: &mut Vec<ScenarioError>) {
    let mut names: HashMap<&str, &Span> = HashMap::new();
    let mut ids: HashMap<u32, (&str, &Span)> = HashMap::new();
    let mut first_user: Option<&Span> = None;
    for field in &container.fields {
        let ContainerField::User { name, id } = &field.value else { continue };
        first_user.get_or_insert(&field.span);
        if let Some(first) = names.get(name.as_str()) {
            errors.push(ScenarioError::with_help(
                field.span.clone(),
                format!(
                    "user `{}` is given twice in container `{}` (first on line {})",
                    visible(name),
                    container.name.value,
                    lines.of(first.start)
                ),
                "`/etc/passwd` names each user once: remove one of them",
            ));
            continue;
        }
        names.insert(name, &field.span);
        if let Some((other, first)) = ids.get(id) {
            errors.push(ScenarioError::with_help(
                field.span.clone(),
                format!(
                    "user id `{id}` is given twice in container `{}` (first on line {}, as `{}`)",
                    container.name.value,
                    lines.of(first.start),
                    visible(other)
                ),
                "a process has one user id, and d4c one name for it: give each user its own id",
            ));
            continue;
        }
        ids.insert(*id, (name, &field.span));
    }
    let Some(user) = first_user else { return };
    for field in &container.fields {
        let clash = match &field.value {
            ContainerField::File { path, .. } | ContainerField::Dir { path, .. } | ContainerField::VolumeFile(path) => {
                path == PASSWD
            }
            _ => false,
        } || matches!(&field.value, ContainerField::File { path, .. } if path == "/etc");
        if clash {
            errors.push(ScenarioError::with_help(
                field.span.clone(),
                format!(
                    "`{}` clashes with the `user` fields of container `{}` (line {}): they make `{PASSWD}`",
                    container_field_text(&field.value),
                    container.name.value,
                    lines.of(user.start)
                ),
                format!("the `user` fields make `{PASSWD}` a file (mode 0644) that names them: remove this field"),
            ));
        }
    }
}

/// A path field as written, for messages: `file "/etc/passwd"`.
fn container_field_text(field: &ContainerField) -> String {
    match field {
        ContainerField::File { path, .. }
        | ContainerField::Dir { path, .. }
        | ContainerField::VolumeFile(path)
        | ContainerField::Volume(path) => format!("{} \"{}\"", field.keyword(), visible(path)),
        other => other.keyword().to_owned(),
    }
}
