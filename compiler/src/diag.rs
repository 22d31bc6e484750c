//! Diagnostics: what every stage of the front end reports.
//!
//! A [`Diagnostic`] names its [`Code`], a lowercase message with the user's
//! text in backticks, a primary label on the exact byte span at fault,
//! optional secondary labels (the first definition of a duplicate, say), an
//! optional `help` line with the fix, and, when the fix is mechanical, the
//! [`Fix`] edits that `d4cc fix` applies. Stages never stop at the first
//! problem: they push into a [`Diagnostics`] list and carry on.

use crate::codes::{Code, Severity};
use crate::span::Span;
use d4c_artifact::display::{escape_control, is_control, MAX_ECHOED_CHARS};
use serde::Serialize;

/// A label on a span, with a short message (which may be empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Label {
    /// The bytes the label underlines.
    pub span: Span,
    /// What the label says there.
    pub message: String,
}

/// One text replacement: `span` becomes `replacement`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edit {
    /// The bytes replaced.
    pub span: Span,
    /// What replaces them.
    pub replacement: String,
}

/// A mechanical fix: edits that never overlap, in any order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// What the fix does, e.g. "rename `orchestratorNamespace` to `kubernetesNamespace`".
    pub description: String,
    /// The edits.
    pub edits: Vec<Edit>,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The rule that fired.
    pub code: Code,
    /// The code's severity; kept here so that renderers need not look it up.
    pub severity: Severity,
    /// Lowercase, no final period, the user's text in backticks.
    pub message: String,
    /// The label on the exact span at fault.
    pub primary: Label,
    /// Labels that help, such as the first definition of a duplicate name.
    pub secondary: Vec<Label>,
    /// The fix, in words.
    pub help: Option<String>,
    /// The fix, as edits, when it is mechanical.
    pub fix: Option<Fix>,
}

impl Diagnostic {
    /// A diagnostic of `code` at `span`, with the code's severity.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(),
            message: tidy(&message.into()),
            primary: Label { span, message: String::new() },
            secondary: Vec::new(),
            help: None,
            fix: None,
        }
    }

    /// Sets the primary label's message.
    pub fn label(mut self, message: impl Into<String>) -> Self {
        self.primary.message = tidy(&message.into());
        self
    }

    /// Adds a secondary label.
    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label { span, message: tidy(&message.into()) });
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(tidy(&help.into()));
        self
    }

    /// Attaches a mechanical fix.
    pub fn fix(mut self, fix: Fix) -> Self {
        self.fix = Some(Fix { description: tidy(&fix.description), ..fix });
        self
    }

    /// Overrides the code's default severity (for rules whose severity
    /// depends on the case, such as a pattern that is legal but suspicious).
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

/// A message made fit for a terminal: control characters escaped
/// everywhere, and the user's text (what is between backticks) cut to
/// [`MAX_ECHOED_CHARS`] characters with an ellipsis and its full length,
/// so that a 10 MB name is not echoed in full. Every message, label, help
/// line and fix description of a [`Diagnostic`] goes through here.
pub fn tidy(message: &str) -> String {
    if !message.contains('`') && !message.chars().any(is_control) {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len().min(4 * MAX_ECHOED_CHARS));
    // Pieces alternate: message text, user text in backticks, message
    // text...; the piece after an unpaired last backtick is message text.
    let backticks = message.matches('`').count();
    for (index, piece) in message.split('`').enumerate() {
        if index % 2 == 0 {
            out.push_str(&escape_control(piece));
            continue;
        }
        out.push('`');
        match piece.char_indices().nth(MAX_ECHOED_CHARS).filter(|_| index < backticks) {
            Some((cut, _)) => {
                out.push_str(&escape_control(piece.get(..cut).unwrap_or_default()));
                out.push_str(&format!("…` ({} bytes)", piece.len()));
            }
            None => {
                out.push_str(&escape_control(piece));
                if index < backticks {
                    out.push('`');
                }
            }
        }
    }
    out
}

/// The diagnostics of one source file, in the order found.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Whether any is an error, or a warning when `deny_warnings`.
    pub fn fails(&self, deny_warnings: bool) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error || (deny_warnings && d.severity == Severity::Warning))
    }

    /// The diagnostics sorted by position, then code: the order users read.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (a.primary.span.start, a.primary.span.end, a.code).cmp(&(b.primary.span.start, b.primary.span.end, b.code))
        });
        self.items
    }

    /// The diagnostics in the order found.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.items
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 14, fault 12): a value's carriage return or escape
    /// sequence reached the terminal in a message.
    #[test]
    fn control_characters_are_escaped_in_messages() {
        let d = Diagnostic::new(Code::UnusedSelector, Span::point(0), "the selector `a\u{1b}[2J\rb` is unused")
            .label("x\ry")
            .help("rename `\u{1b}`");
        assert_eq!(d.message, "the selector `a\\u{1b}[2J\\rb` is unused");
        assert_eq!(d.primary.message, "x\\ry");
        assert_eq!(d.help.as_deref(), Some("rename `\\u{1b}`"));
    }

    /// Regression (issue 14, fault 14): a 10 MB name was echoed in full.
    #[test]
    fn long_user_text_is_truncated_in_messages() {
        let long = "n".repeat(1000);
        let message = tidy(&format!("the selector `{long}` is unused; did you mean `x`?"));
        assert_eq!(message, format!("the selector `{}…` (1000 bytes) is unused; did you mean `x`?", "n".repeat(80)));
        // An unpaired backtick leaves the rest as it is.
        assert_eq!(tidy("a `b` c `d"), "a `b` c `d");
        assert_eq!(tidy("no backticks"), "no backticks");
    }
}
