//! Renderers: diagnostics as people, scripts and code-scanning tools read them.
//!
//! Each renderer takes [`FileReport`]s, one per linted file, and returns its
//! output without printing it:
//!
//! - [`human`]: the terminal form, drawn by `codespan-reporting`, with the
//!   source line, the labels, the `help:` line and a note when a fix exists;
//! - [`json`]: one JSON document (`"version": 1`) for scripts;
//! - [`sarif`]: a SARIF 2.1.0 log for code-scanning tools.
//!
//! Positions are shown as 1-based lines and 1-based columns counted in
//! Unicode scalar values ([`line_col`]). Every span is clamped to its file's
//! text and to character boundaries before it is used, so a stray span never
//! makes a renderer fail.

use crate::codes::Severity;
use crate::diag::Diagnostic;
use crate::source::SourceFile;
use crate::span::Span;

pub mod human;
pub mod json;
pub mod sarif;

/// One file's lint result, as the renderers take it.
#[derive(Clone, Copy, Debug)]
pub struct FileReport<'a> {
    /// The file linted.
    pub source: &'a SourceFile,
    /// What was found in it, in the order to show.
    pub diagnostics: &'a [Diagnostic],
}

/// 1-based line and 1-based column (in Unicode scalar values) of byte offset
/// `at` in `text`; offsets past the end clamp to the end; offsets inside a
/// char clamp back to its start.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = floor_boundary(text, at);
    let before = text.get(..at).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

/// `at` clamped to `text`'s length, then moved back to a character boundary.
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `at` clamped to `text`'s length, then moved on to a character boundary.
fn ceil_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// `span` made safe to use on `text`: both ends within the text and on
/// character boundaries, `start <= end`. A span that splits a character is
/// widened to cover it. Valid spans are returned unchanged.
pub(crate) fn clamp(text: &str, span: Span) -> Span {
    let start = floor_boundary(text, span.start);
    let end = ceil_boundary(text, span.end).max(start);
    Span::new(start, end)
}

/// How many errors and how many warnings the reports hold.
pub(crate) fn count(reports: &[FileReport]) -> (usize, usize) {
    let all = || reports.iter().flat_map(|report| report.diagnostics.iter());
    let errors = all().filter(|d| d.severity == Severity::Error).count();
    let warnings = all().filter(|d| d.severity == Severity::Warning).count();
    (errors, warnings)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Source files and diagnostics that the renderers' tests share.

    use crate::codes::Code;
    use crate::diag::{Diagnostic, Edit, Fix};
    use crate::source::SourceFile;
    use crate::span::Span;

    /// A policy with a duplicate key on line 4 and a multi-byte character
    /// (`é`, two bytes) before it on the same line.
    pub const POLICY: &str = "file:\n  selectors:\n    - name: a\n      # é\n      name: b\n";

    /// A source file named `policies/p.yaml` holding [`POLICY`].
    pub fn policy() -> SourceFile {
        SourceFile { name: "policies/p.yaml".into(), text: POLICY.into() }
    }

    /// Byte offset of the first occurrence of `needle` in [`POLICY`] after `from`.
    pub fn at(needle: &str, from: usize) -> usize {
        from + POLICY[from..].find(needle).unwrap()
    }

    /// A duplicate key with a secondary label, help and a fix; a warning
    /// after a multi-byte character; a point at the end of the file.
    pub fn diagnostics() -> Vec<Diagnostic> {
        let first = at("name", 0);
        let second = at("name", first + 1);
        let accent = at("é", 0);
        vec![
            Diagnostic::new(Code::DuplicateKey, Span::new(second, second + 4), "the key `name` appears twice")
                .label("second `name`")
                .secondary(Span::new(first, first + 4), "first defined here")
                .help("remove one of the two `name` keys")
                .fix(Fix {
                    description: "remove the second `name`".into(),
                    edits: vec![Edit { span: Span::new(second - 6, POLICY.len()), replacement: String::new() }],
                }),
            Diagnostic::new(Code::DuplicateValue, Span::new(accent, accent + 2), "the value `é` appears twice")
                .label("this one"),
            Diagnostic::new(Code::MissingKey, Span::point(POLICY.len()), "the key `responses` is missing"),
        ]
    }

    /// An empty file, as `<stdin>`.
    pub fn empty() -> SourceFile {
        SourceFile { name: "<stdin>".into(), text: String::new() }
    }

    /// A point diagnostic at offset 0, for [`empty`].
    pub fn empty_diagnostics() -> Vec<Diagnostic> {
        vec![Diagnostic::new(Code::DocumentCount, Span::point(0), "the file holds no YAML document")
            .label("expected a policy")
            .help("write a policy with a `file` or a `process` section")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_ascii() {
        let text = "ab\ncd\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 1), (1, 2));
        assert_eq!(line_col(text, 2), (1, 3), "the newline is the last column of its line");
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 5), (2, 3));
        assert_eq!(line_col(text, 6), (3, 1), "the end, after a final newline");
    }

    #[test]
    fn line_col_counts_scalar_values() {
        // é is 2 bytes, 日 is 3, 🦀 is 4.
        let text = "é日🦀x\n🦀y";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (1, 2));
        assert_eq!(line_col(text, 5), (1, 3));
        assert_eq!(line_col(text, 9), (1, 4));
        assert_eq!(line_col(text, 10), (1, 5));
        assert_eq!(line_col(text, 11), (2, 1));
        assert_eq!(line_col(text, 15), (2, 2));
        assert_eq!(line_col(text, 16), (2, 3));
    }

    #[test]
    fn line_col_clamps_inside_a_char_back_to_its_start() {
        let text = "a日b";
        assert_eq!(line_col(text, 2), (1, 2));
        assert_eq!(line_col(text, 3), (1, 2));
        assert_eq!(line_col(text, 4), (1, 3));
    }

    #[test]
    fn line_col_clamps_past_the_end() {
        assert_eq!(line_col("ab\nc", 99), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
        assert_eq!(line_col("", 7), (1, 1));
        assert_eq!(line_col("🦀", 3), (1, 1));
    }

    #[test]
    fn clamp_keeps_valid_spans_and_repairs_others() {
        let text = "a日b";
        assert_eq!(clamp(text, Span::new(1, 4)), Span::new(1, 4));
        assert_eq!(clamp(text, Span::new(2, 3)), Span::new(1, 4), "widened to the whole char");
        assert_eq!(clamp(text, Span::new(4, 99)), Span::new(4, 5));
        assert_eq!(clamp(text, Span::new(50, 99)), Span::point(5));
        assert_eq!(clamp(text, Span::new(4, 2)), Span::point(4), "end before start");
        assert_eq!(clamp("", Span::new(0, 3)), Span::point(0));
    }

    #[test]
    fn count_by_severity() {
        let source = fixtures::policy();
        let diagnostics = fixtures::diagnostics();
        let empty = fixtures::empty();
        let reports = [
            FileReport { source: &source, diagnostics: &diagnostics },
            FileReport { source: &empty, diagnostics: &[] },
        ];
        assert_eq!(count(&reports), (2, 1));
        assert_eq!(count(&[]), (0, 0));
    }
}
