//! The terminal form of diagnostics, drawn by `codespan-reporting`.
//!
//! ```text
//! error[D4C0007]: the key `name` appears twice
//!   ┌─ policies/p.yaml:5:7
//!   │
//! 3 │     - name: a
//!   │       ---- first defined here
//! 4 │       # é
//! 5 │       name: b
//!   │       ^^^^ second `name`
//!   │
//!   = help: remove one of the two `name` keys
//!   = fix available: remove the second `name` (run `d4cc fix`)
//! ```

use super::{clamp, count, line_col, FileReport};
use crate::codes::Severity;
use crate::diag::Diagnostic;
use codespan_reporting::diagnostic::{Diagnostic as Report, Label, Severity as ReportSeverity};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::termcolor::Ansi;
use codespan_reporting::term::{self, Config};
use d4c_artifact::display::{escape_control, is_control};
use std::fmt::Write as _;

/// Renders `report` with codespan-reporting: a header such as
/// `error[D4C0007]: message`, the primary label on the span, the secondary
/// labels, a `help:` note from [`Diagnostic::help`], and a final note
/// ``fix available: <description> (run `d4cc fix`)`` when there is a fix.
/// With `color` false the text holds no ANSI escapes at all; with it true,
/// ANSI colours. Returns the text (does not print); nothing when there are
/// no diagnostics.
pub fn render(report: &FileReport, color: bool) -> String {
    let name = escape_control(&report.source.name);
    let shown_text = visible(&report.source.text);
    let file = SimpleFile::new(name.as_ref(), shown_text.as_ref());
    let config = Config::default();
    let mut out = String::new();
    for diagnostic in report.diagnostics {
        if let Some((line, bytes)) = long_line(&report.source.text, diagnostic) {
            // A 10 MB line is not copied to the terminal: the location,
            // message and help are enough.
            let text = fallback(report, diagnostic);
            let note = format!("  = note: line {line} is {bytes} bytes long; it is not shown\n\n");
            out.push_str(text.strip_suffix('\n').unwrap_or(&text));
            out.push_str(&note);
            continue;
        }
        let shown = to_codespan(report, diagnostic);
        let rendered = if color {
            let mut ansi = Ansi::new(Vec::new());
            term::emit_to_write_style(&mut ansi, &config, &file, &shown)
                .map(|()| String::from_utf8_lossy(&ansi.into_inner()).into_owned())
        } else {
            let mut plain = String::new();
            term::emit_to_string(&mut plain, &config, &file, &shown).map(|()| plain)
        };
        match rendered {
            Ok(text) => out.push_str(&text),
            // Spans are clamped, so codespan has no reason to fail; should it
            // all the same, the diagnostic is still shown, without the source.
            Err(_) => out.push_str(&fallback(report, diagnostic)),
        }
    }
    out
}

/// The longest line excerpts show in full, in bytes (the longest path a
/// policy may hold, 4095 bytes, fits with room to spare).
pub const MAX_EXCERPT_LINE_BYTES: usize = 8192;

/// The first line (1-based) a label of `diagnostic` is on that is longer
/// than [`MAX_EXCERPT_LINE_BYTES`], with its length.
fn long_line(text: &str, diagnostic: &Diagnostic) -> Option<(usize, usize)> {
    let spans = std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary).map(|l| clamp(text, l.span));
    spans.into_iter().find_map(|span| {
        let start = text.get(..span.start).and_then(|t| t.rfind('\n')).map_or(0, |i| i + 1);
        let end = text.get(span.start..).and_then(|t| t.find('\n')).map_or(text.len(), |i| span.start + i);
        let bytes = end.saturating_sub(start);
        (bytes > MAX_EXCERPT_LINE_BYTES).then(|| (line_col(text, span.start).0, bytes))
    })
}

/// The source as the excerpts show it: each control character other than
/// a tab or a line break replaced by one visible character of the same
/// UTF-8 length (`?`, `¿` or `�`), so that the spans still hold and a
/// carriage return or an escape sequence in the file reaches no terminal.
fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    let mut chars = text.chars().peekable();
    let hidden =
        |c: char, next: Option<&char>| is_control(c) && c != '\t' && c != '\n' && !(c == '\r' && next == Some(&'\n'));
    let mut out: Option<String> = None;
    let mut at = 0;
    while let Some(c) = chars.next() {
        if hidden(c, chars.peek()) {
            let out = out.get_or_insert_with(|| text.get(..at).unwrap_or_default().to_string());
            out.push(match c.len_utf8() {
                1 => '?',
                2 => '¿',
                _ => '\u{fffd}',
            });
        } else if let Some(out) = out.as_mut() {
            out.push(c);
        }
        at += c.len_utf8();
    }
    out.map_or(std::borrow::Cow::Borrowed(text), std::borrow::Cow::Owned)
}

/// A one-line summary such as `2 errors, 1 warning in 3 files` or
/// `no problems in 1 file`, with singulars and plurals right.
pub fn summary(reports: &[FileReport]) -> String {
    let (errors, warnings) = count(reports);
    let files = plural(reports.len(), "file");
    match (errors, warnings) {
        (0, 0) => format!("no problems in {files}"),
        (_, 0) => format!("{} in {files}", plural(errors, "error")),
        (0, _) => format!("{} in {files}", plural(warnings, "warning")),
        (_, _) => format!("{}, {} in {files}", plural(errors, "error"), plural(warnings, "warning")),
    }
}

/// `n` and `noun`, with an `s` unless `n` is 1.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The codespan form of one diagnostic, on the report's only file.
fn to_codespan(report: &FileReport, diagnostic: &Diagnostic) -> Report<()> {
    let text = report.source.text.as_str();
    let severity = match diagnostic.severity {
        Severity::Error => ReportSeverity::Error,
        Severity::Warning => ReportSeverity::Warning,
    };
    let primary =
        Label::primary((), clamp(text, diagnostic.primary.span).range()).with_message(&diagnostic.primary.message);
    let secondary = diagnostic
        .secondary
        .iter()
        .map(|label| Label::secondary((), clamp(text, label.span).range()).with_message(&label.message));
    let help = diagnostic.help.iter().map(|help| format!("help: {help}"));
    let fix = diagnostic.fix.iter().map(|fix| format!("fix available: {} (run `d4cc fix`)", fix.description));
    Report::new(severity)
        .with_code(diagnostic.code.id())
        .with_message(&diagnostic.message)
        .with_labels(vec![primary])
        .with_labels_iter(secondary)
        .with_notes_iter(help.chain(fix))
}

/// A plain rendering without the source, for when codespan fails.
fn fallback(report: &FileReport, diagnostic: &Diagnostic) -> String {
    let text = report.source.text.as_str();
    let (line, column) = line_col(text, clamp(text, diagnostic.primary.span).start);
    let mut out = format!(
        "{}[{}]: {}\n  --> {}:{line}:{column}\n",
        diagnostic.severity.as_str(),
        diagnostic.code.id(),
        diagnostic.message,
        escape_control(&report.source.name),
    );
    if let Some(help) = &diagnostic.help {
        let _ = writeln!(out, "  = help: {help}");
    }
    if let Some(fix) = &diagnostic.fix {
        let _ = writeln!(out, "  = fix available: {} (run `d4cc fix`)", fix.description);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::Code;
    use crate::render::fixtures;
    use crate::source::SourceFile;
    use crate::span::Span;

    #[test]
    fn plain_rendering_has_code_position_help_and_fix() {
        let source = fixtures::policy();
        let diagnostics = fixtures::diagnostics();
        let out = render(&FileReport { source: &source, diagnostics: &diagnostics }, false);
        assert!(!out.contains("\x1b["), "{out}");
        assert!(out.contains("error[D4C0007]: the key `name` appears twice"), "{out}");
        assert!(out.contains("policies/p.yaml:5:7"), "{out}");
        assert!(out.contains("second `name`"), "{out}");
        assert!(out.contains("first defined here"), "{out}");
        assert!(out.contains("= help: remove one of the two `name` keys"), "{out}");
        assert!(out.contains("= fix available: remove the second `name` (run `d4cc fix`)"), "{out}");
        // After `é` (two bytes), the column counts characters.
        assert!(out.contains("warning[D4C0023]: the value `é` appears twice"), "{out}");
        assert!(out.contains("policies/p.yaml:4:9"), "{out}");
        // A point at the very end: the empty line after the final newline.
        assert!(out.contains("error[D4C0008]: the key `responses` is missing"), "{out}");
        assert!(out.contains("policies/p.yaml:6:1"), "{out}");
    }

    /// Regression (issue 14, fault 12): a raw escape sequence or carriage
    /// return in the file (saphyr reads one in a plain scalar) was copied
    /// into the excerpt, and a file name's into the location line.
    #[test]
    fn control_characters_in_the_source_do_not_reach_the_terminal() {
        let text = "- name: a\u{1b}[2Jb\r/etc\u{85}x\r\n- b\n";
        let source = SourceFile { name: "p\r.yaml".to_string(), text: text.to_string() };
        let at = text.find('b').unwrap_or_default();
        let diagnostics = vec![Diagnostic::new(Code::UnusedSelector, Span::new(at, at + 1), "unused").label("here")];
        let out = render(&FileReport { source: &source, diagnostics: &diagnostics }, false);
        assert!(!out.contains(['\u{1b}', '\r', '\u{85}']), "{out:?}");
        assert!(out.contains("- name: a?[2Jb?/etc¿x"), "{out}");
        assert!(out.contains("p\\r.yaml:1:14"), "{out}");
    }

    /// Regression (issue 14, fault 14): a diagnostic on a 10 MB line
    /// copied the whole line into its excerpt.
    #[test]
    fn long_lines_are_not_excerpted() {
        let text = format!("- name: {}\n- b\n", "a".repeat(100_000));
        let source = SourceFile { name: "p.yaml".to_string(), text };
        let diagnostics = vec![Diagnostic::new(Code::UnusedSelector, Span::new(8, 100_008), "unused").label("here")];
        let out = render(&FileReport { source: &source, diagnostics: &diagnostics }, false);
        assert_eq!(
            out,
            "warning[D4C0024]: unused\n  --> p.yaml:1:9\n  = note: line 1 is 100008 bytes long; it is not shown\n\n"
        );
    }

    #[test]
    fn plain_rendering_snapshot() {
        let source = fixtures::policy();
        let diagnostics = fixtures::diagnostics();
        insta::assert_snapshot!(render(&FileReport { source: &source, diagnostics: &diagnostics }, false));
    }

    #[test]
    fn colour_rendering_uses_ansi_escapes() {
        let source = fixtures::policy();
        let diagnostics = fixtures::diagnostics();
        let report = FileReport { source: &source, diagnostics: &diagnostics };
        let out = render(&report, true);
        assert!(out.contains("\x1b["), "{out}");
        assert!(out.contains("D4C0007"), "{out}");
        let stripped = strip_ansi(&out);
        assert_eq!(stripped, render(&report, false));
    }

    #[test]
    fn empty_file_with_a_point_at_zero() {
        let source = fixtures::empty();
        let diagnostics = fixtures::empty_diagnostics();
        for color in [false, true] {
            let out = render(&FileReport { source: &source, diagnostics: &diagnostics }, color);
            let out = strip_ansi(&out);
            assert!(out.contains("error[D4C0004]: the file holds no YAML document"), "{out}");
            assert!(out.contains("<stdin>:1:1"), "{out}");
            assert!(out.contains("= help: write a policy"), "{out}");
        }
    }

    #[test]
    fn no_trailing_newline_and_point_at_end() {
        let source = SourceFile { name: "p.yaml".into(), text: "file:\n  x: é".into() };
        let end = source.text.len();
        let diagnostics = [Diagnostic::new(Code::InvalidYaml, Span::point(end), "unexpected end of file")];
        let out = render(&FileReport { source: &source, diagnostics: &diagnostics }, false);
        assert!(out.contains("p.yaml:2:7"), "{out}");
    }

    #[test]
    fn stray_spans_do_not_fail() {
        let source = SourceFile { name: "p.yaml".into(), text: "a: 日\n".into() };
        let diagnostics = [
            Diagnostic::new(Code::InvalidYaml, Span::new(4, 5), "inside a char")
                .secondary(Span::new(90, 99), "past the end"),
            Diagnostic::new(Code::InvalidYaml, Span::new(5, 2), "backwards"),
            Diagnostic::new(Code::InvalidYaml, Span::new(0, 6), "across the newline"),
        ];
        for color in [false, true] {
            let out = render(&FileReport { source: &source, diagnostics: &diagnostics }, color);
            assert!(strip_ansi(&out).contains("p.yaml:1:4"), "{out}");
            assert!(out.contains("backwards"), "{out}");
            assert!(out.contains("across the newline"), "{out}");
        }
    }

    #[test]
    fn fallback_has_code_position_and_notes() {
        let source = fixtures::policy();
        let diagnostics = fixtures::diagnostics();
        let report = FileReport { source: &source, diagnostics: &diagnostics };
        let out = fallback(&report, &diagnostics[0]);
        assert_eq!(
            out,
            "error[D4C0007]: the key `name` appears twice\n  --> policies/p.yaml:5:7\n  = help: remove one of the two `name` keys\n  = fix available: remove the second `name` (run `d4cc fix`)\n\n"
        );
    }

    #[test]
    fn no_diagnostics_render_nothing() {
        let source = fixtures::policy();
        assert_eq!(render(&FileReport { source: &source, diagnostics: &[] }, false), "");
    }

    #[test]
    fn summary_wording() {
        let source = fixtures::policy();
        let all = fixtures::diagnostics();
        let one_error = &all[..1];
        let one_warning = &all[1..2];
        let two_errors = [all[0].clone(), all[2].clone()];
        let report = |diagnostics| FileReport { source: &source, diagnostics };
        assert_eq!(summary(&[]), "no problems in 0 files");
        assert_eq!(summary(&[report(&[])]), "no problems in 1 file");
        assert_eq!(summary(&[report(&[]), report(&[]), report(&[])]), "no problems in 3 files");
        assert_eq!(summary(&[report(one_error)]), "1 error in 1 file");
        assert_eq!(summary(&[report(one_warning), report(&[])]), "1 warning in 2 files");
        assert_eq!(
            summary(&[report(&two_errors), report(one_warning), report(one_warning)]),
            "2 errors, 2 warnings in 3 files"
        );
        assert_eq!(summary(&[report(&all), report(&[]), report(&[])]), "2 errors, 1 warning in 3 files");
    }

    /// `text` without ANSI SGR sequences (`ESC [ ... m`).
    fn strip_ansi(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
