//! Scenario errors, and the wording of lalrpop's syntax errors.
//!
//! lalrpop reports the terminals it expected by their names in the grammar
//! (`"\"create\""`, `"\"<path>\""`). [`from_parse_error`] turns them into what
//! the user would type, groups the long lists (every operation, every
//! container field, every selector name) under one phrase, and suggests the
//! nearest keyword for a misspelt one.

use std::convert::Infallible;
use std::fmt;

use lalrpop_util::ParseError;

use crate::ast::Span;
use crate::lexer::Tok;

/// A problem in a scenario file: where (byte span, possibly empty at EOF), what (lowercase message, user text in backticks, no final period), and an optional help line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The bytes at fault; empty at the end of the text or where something is missing.
    pub span: Span,
    /// What is wrong: lowercase, the user's text in backticks, no final period.
    pub message: String,
    /// How to fix it, when there is something to say.
    pub help: Option<String>,
}

impl ScenarioError {
    /// An error without help.
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        ScenarioError { span, message: message.into(), help: None }
    }

    /// An error with a help line.
    pub fn with_help(span: Span, message: impl Into<String>, help: impl Into<String>) -> Self {
        ScenarioError { span, message: message.into(), help: Some(help.into()) }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}: {}", self.span.start, self.span.end, self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// The operations, in the order the help lists them.
const OPERATIONS: [&str; 15] = [
    "create",
    "write",
    "truncate",
    "chmod",
    "setfacl",
    "mknod",
    "rename",
    "exchange",
    "link",
    "symlink",
    "unlink",
    "mkdir",
    "exec",
    "fork",
    "memfd-exec",
];

/// The container fields' keywords.
const FIELDS: [&str; 10] =
    ["image", "namespace", "pod", "label", "cluster-id", "cluster-name", "volume", "file", "dir", "user"];

/// Every keyword of the scenario language, each of which is also a valid
/// selector name in a verdict's list.
pub const KEYWORDS: [&str; 38] = [
    "policy",
    "container",
    "in",
    "as",
    "name",
    "interactive",
    "user",
    "image",
    "namespace",
    "pod",
    "label",
    "cluster-id",
    "cluster-name",
    "volume",
    "file",
    "dir",
    "mode",
    "create",
    "write",
    "truncate",
    "chmod",
    "mknod",
    "rename",
    "link",
    "to",
    "unlink",
    "exec",
    "fork",
    "memfd-exec",
    "mkdir",
    "symlink",
    "exchange",
    "setfacl",
    "with",
    "allow",
    "log",
    "alert",
    "block",
];

/// Turns a lalrpop error into a scenario error, quoting the offending text
/// from `text`.
pub(crate) fn from_parse_error(text: &str, error: ParseError<usize, Tok<'_>, Infallible>) -> ScenarioError {
    match error {
        ParseError::UnrecognizedToken { token: (start, _, end), expected } => {
            let found = text.get(start..end).unwrap_or("");
            let before = text.get(..start).unwrap_or("");
            unexpected(start..end, &format!("`{}`", shorten(found)), Some(found), before, &expected)
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let before = text.get(..location).unwrap_or("");
            unexpected(location..location, "the end of the file", None, before, &expected)
        }
        ParseError::ExtraToken { token: (start, _, end) } => {
            let found = text.get(start..end).unwrap_or("");
            ScenarioError::new(start..end, format!("unexpected `{}`", shorten(found)))
        }
        // Only lalrpop's built-in lexer makes this one; kept for completeness.
        ParseError::InvalidToken { location } => ScenarioError::new(location..location, "invalid token"),
        ParseError::User { error } => match error {},
    }
}

/// The text of a token, cut to a readable length on a character boundary.
fn shorten(found: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut shown = visible(&found.chars().take(MAX_CHARS).collect::<String>());
    if found.chars().nth(MAX_CHARS).is_some() {
        shown.push_str("...");
    }
    shown
}

/// `text` with its control characters (newlines, tabs, NULs...) escaped, so
/// a message stays on one line and shows what is there.
pub(crate) fn visible(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

/// "expected ..., found ..." with a help line where one helps.
/// `before` is the text before `span`: a number after `=` is a user id.
fn unexpected(span: Span, found: &str, found_text: Option<&str>, before: &str, expected: &[String]) -> ScenarioError {
    let names: Vec<&str> = expected.iter().map(|e| e.trim_matches('"')).collect();
    let has = |n: &str| names.contains(&n);
    let all = |set: &[&str]| set.iter().all(|n| has(n));
    let mut phrases: Vec<String> = Vec::new();
    let mut help: Option<String> = None;

    let selector = has("<name>") && all(&KEYWORDS);
    let operation = !selector && all(&OPERATIONS);
    let field = !selector && all(&FIELDS);
    let path = has("<path>");
    // A step's `user` takes a name or an id, and a `user` field an id after
    // `=`; everywhere else a number is a mode (or a selector name).
    let user_id = has("<octal>") && (has("<string>") || before.trim_end().ends_with('='));
    let mut keywords: Vec<&str> = Vec::new();
    for name in &names {
        let grouped = (selector && (KEYWORDS.contains(name) || *name == "<name>" || *name == "<octal>"))
            || (operation && OPERATIONS.contains(name))
            || (field && FIELDS.contains(name))
            || (path && *name == "<string>");
        if grouped {
            continue;
        }
        phrases.push(match *name {
            "<name>" => "a name".to_owned(),
            "<octal>" if user_id => "a user id such as `1000`".to_owned(),
            "<octal>" => "an octal mode such as `0755`".to_owned(),
            "<path>" => "a path".to_owned(),
            "<string>" => "a string".to_owned(),
            other => {
                keywords.push(other);
                format!("`{other}`")
            }
        });
    }
    if selector {
        phrases.insert(0, "a selector name".to_owned());
    }
    if field {
        phrases.insert(0, "a container field".to_owned());
        keywords.extend(FIELDS);
        help = Some(
            "the fields are `image`, `namespace`, `pod`, `label`, `cluster-id`, `cluster-name`, \
             `volume`, `volume file`, `file`, `dir` and `user`"
                .to_owned(),
        );
    }
    if operation {
        phrases.insert(0, "an operation".to_owned());
        keywords.extend(OPERATIONS);
        help = Some(
            "the operations are `create`, `write`, `truncate`, `chmod`, `mknod`, `rename`, `link`, \
             `unlink`, `exec`, `fork` and `memfd-exec`"
                .to_owned(),
        );
    }
    if path && found_text.is_some_and(|f| !f.starts_with(['/', '"'])) && found_text.is_some_and(is_word) {
        help = Some("a path is a bare absolute path such as `/usr/bin/ls`, or a quoted string".to_owned());
    }
    if user_id && has("<string>") && found_text.is_some_and(is_word) {
        help =
            Some(format!("a user is a name in quotes, such as `\"{}\"`, or a user id", found_text.unwrap_or_default()));
    }
    if has("}") && found_text.is_none_or(|f| ["policy", "container", "in"].contains(&f)) {
        help = Some("close the container with `}`".to_owned());
    }
    if let Some(suggestion) = found_text.and_then(|f| nearest(f, &keywords)) {
        help = Some(format!("did you mean `{suggestion}`?"));
    }

    if phrases.len() == 1 && has("<name>") && found_text.is_some_and(|f| KEYWORDS.contains(&f)) {
        help = Some(format!("`{}` is a keyword, which cannot be a name", found_text.unwrap_or_default()));
    }

    // "one of" only before a list of tokens to type, not of descriptions.
    let one_of = if phrases.iter().all(|p| p.starts_with('`')) { "one of " } else { "" };
    let message = match phrases.as_slice() {
        [] => format!("unexpected {found}"),
        [one] => format!("expected {one}, found {found}"),
        [init @ .., last] => format!("expected {one_of}{} or {last}, found {found}", init.join(", ")),
    };
    ScenarioError { span, message, help }
}

/// Whether `text` could be a name: letters, digits, `_` and `-`.
fn is_word(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The keyword closest to a misspelt word, if any is close enough.
fn nearest<'k>(found: &str, keywords: &[&'k str]) -> Option<&'k str> {
    // Too short a word would be near too many keywords to mean any.
    if found.len() < 3 || found.len() > crate::check::MAX_SUGGESTION_LEN || !is_word(found) || keywords.contains(&found)
    {
        return None;
    }
    let limit = (found.chars().count() / 3).max(1);
    keywords
        .iter()
        .filter(|k| is_word(k))
        .map(|k| (edit_distance(found, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edit distance over characters, a swap of two neighbours counting as
/// one edit (optimal string alignment).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the table, each b.len() + 1 long.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let at = |r: &[usize], k: usize| r.get(k).copied().unwrap_or(usize::MAX);
            let substitute = at(&previous, j).saturating_add(usize::from(ca != cb));
            let delete = at(&previous, j + 1).saturating_add(1);
            let insert = at(&row, j).saturating_add(1);
            let mut best = substitute.min(delete).min(insert);
            let swapped = i > 0 && j > 0 && a.get(i - 1) == Some(cb) && b.get(j - 1) == Some(ca);
            if swapped {
                best = best.min(at(&before, j - 1).saturating_add(1));
            }
            row.push(best);
        }
        before = std::mem::replace(&mut previous, row);
    }
    previous.last().copied().unwrap_or(0)
}
