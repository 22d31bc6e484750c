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
            message: message.into(),
            primary: Label { span, message: String::new() },
            secondary: Vec::new(),
            help: None,
            fix: None,
        }
    }

    /// Sets the primary label's message.
    pub fn label(mut self, message: impl Into<String>) -> Self {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary label.
    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Attaches a mechanical fix.
    pub fn fix(mut self, fix: Fix) -> Self {
        self.fix = Some(fix);
        self
    }

    /// Overrides the code's default severity (for rules whose severity
    /// depends on the case, such as a pattern that is legal but suspicious).
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
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
