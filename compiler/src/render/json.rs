//! Diagnostics as one JSON document, for scripts.
//!
//! ```json
//! {"version": 1,
//!  "files": [{"path": "p.yaml", "diagnostics": [{
//!     "code": "D4C0007", "name": "duplicate-key", "severity": "error",
//!     "message": "the key `name` appears twice",
//!     "span": {"start": 50, "end": 54}, "line": 5, "column": 7, "end_line": 5, "end_column": 11,
//!     "label": "second `name`",
//!     "secondary": [{"span": {"start": 25, "end": 29}, "line": 3, "column": 7, "message": "first defined here"}],
//!     "help": "remove one of the two `name` keys",
//!     "fix": {"description": "remove the second `name`", "edits": [{"span": {"start": 44, "end": 58}, "replacement": ""}]}}]}],
//!  "summary": {"errors": 1, "warnings": 0, "files": 1}}
//! ```
//!
//! `version` changes only when a field changes meaning or goes away; new
//! fields may be added without a new version. Spans are byte offsets into the
//! file; lines and columns are 1-based, columns counted in Unicode scalar
//! values, and `end_line`/`end_column` name the position just past the span.
//! `label` is the primary label's message, possibly empty; `help` and `fix`
//! are `null` when absent.

use super::{clamp, count, line_col, FileReport};
use crate::diag::Diagnostic;
use crate::span::Span;
use serde_json::{json, Value};

/// The JSON form of `reports` (see the module documentation):
///
/// ```text
/// {"version":1,"files":[{"path":..,"diagnostics":[{"code":"D4C0007","name":"duplicate-key",
///   "severity":"error","message":..,"span":{"start":..,"end":..},"line":..,"column":..,
///   "end_line":..,"end_column":..,"label":..,
///   "secondary":[{"span":..,"line":..,"column":..,"message":..}],"help":..|null,
///   "fix":{"description":..,"edits":[{"span":..,"replacement":..}]}|null}]}],
///  "summary":{"errors":N,"warnings":N,"files":N}}
/// ```
pub fn render(reports: &[FileReport]) -> Value {
    let (errors, warnings) = count(reports);
    let files: Vec<Value> = reports
        .iter()
        .map(|report| {
            let text = report.source.text.as_str();
            let diagnostics: Vec<Value> = report.diagnostics.iter().map(|d| diagnostic(text, d)).collect();
            json!({ "path": report.source.name, "diagnostics": diagnostics })
        })
        .collect();
    json!({
        "version": 1,
        "files": files,
        "summary": { "errors": errors, "warnings": warnings, "files": reports.len() },
    })
}

/// One diagnostic, its spans clamped to `text`.
fn diagnostic(text: &str, d: &Diagnostic) -> Value {
    let primary = clamp(text, d.primary.span);
    let (line, column) = line_col(text, primary.start);
    let (end_line, end_column) = line_col(text, primary.end);
    let secondary: Vec<Value> = d
        .secondary
        .iter()
        .map(|label| {
            let span = clamp(text, label.span);
            let (line, column) = line_col(text, span.start);
            json!({ "span": span_json(span), "line": line, "column": column, "message": label.message })
        })
        .collect();
    let fix = d.fix.as_ref().map(|fix| {
        let edits: Vec<Value> = fix
            .edits
            .iter()
            .map(|edit| json!({ "span": span_json(clamp(text, edit.span)), "replacement": edit.replacement }))
            .collect();
        json!({ "description": fix.description, "edits": edits })
    });
    json!({
        "code": d.code.id(),
        "name": d.code.name(),
        "severity": d.severity.as_str(),
        "message": d.message,
        "span": span_json(primary),
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "label": d.primary.message,
        "secondary": secondary,
        "help": d.help,
        "fix": fix,
    })
}

/// `{"start": .., "end": ..}`.
fn span_json(span: Span) -> Value {
    json!({ "start": span.start, "end": span.end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures;

    #[test]
    fn fields_and_positions() {
        let source = fixtures::policy();
        let diagnostics = fixtures::diagnostics();
        let empty = fixtures::empty();
        let v = render(&[
            FileReport { source: &source, diagnostics: &diagnostics },
            FileReport { source: &empty, diagnostics: &[] },
        ]);
        assert_eq!(v["version"], 1);
        assert_eq!(v["summary"], json!({ "errors": 2, "warnings": 1, "files": 2 }));
        assert_eq!(v["files"][0]["path"], "policies/p.yaml");
        assert_eq!(v["files"][1], json!({ "path": "<stdin>", "diagnostics": [] }));

        let first = fixtures::at("name", 0);
        let second = fixtures::at("name", first + 1);
        let d = &v["files"][0]["diagnostics"][0];
        assert_eq!(
            *d,
            json!({
                "code": "D4C0007",
                "name": "duplicate-key",
                "severity": "error",
                "message": "the key `name` appears twice",
                "span": { "start": second, "end": second + 4 },
                "line": 5, "column": 7, "end_line": 5, "end_column": 11,
                "label": "second `name`",
                "secondary": [{
                    "span": { "start": first, "end": first + 4 },
                    "line": 3, "column": 7,
                    "message": "first defined here",
                }],
                "help": "remove one of the two `name` keys",
                "fix": {
                    "description": "remove the second `name`",
                    "edits": [{ "span": { "start": second - 6, "end": fixtures::POLICY.len() }, "replacement": "" }],
                },
            })
        );

        // `é` is two bytes but one column.
        let d = &v["files"][0]["diagnostics"][1];
        assert_eq!(
            (&d["code"], &d["name"], &d["severity"]),
            (&json!("D4C0023"), &json!("duplicate-value"), &json!("warning"))
        );
        assert_eq!(
            (&d["line"], &d["column"], &d["end_line"], &d["end_column"]),
            (&json!(4), &json!(9), &json!(4), &json!(10))
        );
        assert_eq!(d["span"]["end"].as_u64().unwrap() - d["span"]["start"].as_u64().unwrap(), 2);
        assert_eq!(d["help"], Value::Null);
        assert_eq!(d["fix"], Value::Null);
        assert_eq!(d["secondary"], json!([]));

        // A point at the end, after the final newline.
        let d = &v["files"][0]["diagnostics"][2];
        let end = fixtures::POLICY.len();
        assert_eq!(d["span"], json!({ "start": end, "end": end }));
        assert_eq!(
            (&d["line"], &d["column"], &d["end_line"], &d["end_column"]),
            (&json!(6), &json!(1), &json!(6), &json!(1))
        );
        assert_eq!(d["label"], "");
    }

    #[test]
    fn empty_file_point_at_zero() {
        let source = fixtures::empty();
        let diagnostics = fixtures::empty_diagnostics();
        let v = render(&[FileReport { source: &source, diagnostics: &diagnostics }]);
        let d = &v["files"][0]["diagnostics"][0];
        assert_eq!(d["span"], json!({ "start": 0, "end": 0 }));
        assert_eq!(
            (&d["line"], &d["column"], &d["end_line"], &d["end_column"]),
            (&json!(1), &json!(1), &json!(1), &json!(1))
        );
        assert_eq!(v["summary"], json!({ "errors": 1, "warnings": 0, "files": 1 }));
    }

    #[test]
    fn no_files() {
        assert_eq!(
            render(&[]),
            json!({ "version": 1, "files": [], "summary": { "errors": 0, "warnings": 0, "files": 0 } })
        );
    }

    #[test]
    fn snapshot() {
        let source = fixtures::policy();
        let diagnostics = fixtures::diagnostics();
        insta::assert_json_snapshot!(render(&[FileReport { source: &source, diagnostics: &diagnostics }]));
    }
}
