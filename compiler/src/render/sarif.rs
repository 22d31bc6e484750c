//! Diagnostics as a SARIF 2.1.0 log, for code-scanning tools.
//!
//! The log has one run. Its driver lists every code of the registry as a
//! rule, in id order, so that `ruleIndex` is stable across runs; each result
//! names its rule by id and index. Regions carry both line/column (columns
//! in Unicode code points, as the run's `columnKind` says) and byte
//! offset/length. Secondary labels become `relatedLocations`, and a
//! mechanical fix becomes a `fixes` entry whose replacements are byte
//! regions.

use super::{clamp, line_col, FileReport};
use crate::codes::Code;
use crate::diag::Diagnostic;
use crate::span::Span;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// The schema the log names.
const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Where the driver sends people for more.
const INFORMATION_URI: &str = "https://example.invalid/d4c";

/// A SARIF 2.1.0 log of `reports`.
///
/// `$schema` is `https://json.schemastore.org/sarif-2.1.0.json`, `version`
/// is `2.1.0`, and there is one run. Its `tool.driver` is `d4cc`, with
/// `informationUri`, `version` (`tool_version`) and one rule per code in
/// [`Code::ALL`], in that order: `id`, `name`, `shortDescription` (the
/// summary), `fullDescription` and `help` (the explanation, as text and
/// Markdown) and `defaultConfiguration.level`. Each result has `ruleId`,
/// `ruleIndex`, `level` (`error` or `warning`), `message.text` (the message,
/// plus `\nhelp: ...` when there is help), one location whose
/// `physicalLocation` has `artifactLocation.uri` (the path: a relative path
/// as given, with forward slashes) and a `region` (`startLine`,
/// `startColumn`, `endLine`, `endColumn`, `byteOffset`, `byteLength`),
/// `relatedLocations` (with ids and messages) for secondary labels, and
/// `fixes` (`artifactChanges` whose `replacements` have a `deletedRegion` by
/// byte offset and length and `insertedContent.text`) when a fix exists. The
/// run's `columnKind` is `unicodeCodePoints`.
pub fn render(reports: &[FileReport], tool_version: &str) -> Value {
    let rules: Vec<Value> = Code::ALL.iter().map(|&code| rule(code)).collect();
    let results: Vec<Value> = reports
        .iter()
        .flat_map(|report| {
            let text = report.source.text.as_str();
            let uri = artifact_uri(&report.source.name);
            report.diagnostics.iter().map(move |d| result(text, &uri, d))
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "d4cc",
                    "informationUri": INFORMATION_URI,
                    "version": tool_version,
                    "rules": rules,
                },
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// The rule for `code`: a `reportingDescriptor`.
fn rule(code: Code) -> Value {
    let explanation = code.explanation();
    json!({
        "id": code.id(),
        "name": code.name(),
        "shortDescription": { "text": code.summary() },
        "fullDescription": { "text": explanation, "markdown": explanation },
        "help": { "text": explanation, "markdown": explanation },
        "defaultConfiguration": { "level": code.severity().as_str() },
    })
}

/// The index of `code` in [`Code::ALL`], which is the rules array.
fn rule_index(code: Code) -> Option<usize> {
    Code::ALL.iter().position(|&c| c == code)
}

/// One result, its spans clamped to `text`.
fn result(text: &str, uri: &str, d: &Diagnostic) -> Value {
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    let mut result = Map::new();
    result.insert("ruleId".into(), json!(d.code.id()));
    if let Some(index) = rule_index(d.code) {
        result.insert("ruleIndex".into(), json!(index));
    }
    result.insert("level".into(), json!(d.severity.as_str()));
    result.insert("message".into(), json!({ "text": message }));
    result.insert("locations".into(), json!([location(text, uri, d.primary.span, &d.primary.message, None)]));
    if !d.secondary.is_empty() {
        let related: Vec<Value> = d
            .secondary
            .iter()
            .enumerate()
            .map(|(id, label)| location(text, uri, label.span, &label.message, Some(id)))
            .collect();
        result.insert("relatedLocations".into(), Value::Array(related));
    }
    if let Some(fix) = &d.fix {
        let replacements: Vec<Value> = fix
            .edits
            .iter()
            .map(|edit| {
                let span = clamp(text, edit.span);
                json!({
                    "deletedRegion": { "byteOffset": span.start, "byteLength": span.end - span.start },
                    "insertedContent": { "text": edit.replacement },
                })
            })
            .collect();
        result.insert(
            "fixes".into(),
            json!([{
                "description": { "text": fix.description },
                "artifactChanges": [{ "artifactLocation": { "uri": uri }, "replacements": replacements }],
            }]),
        );
    }
    Value::Object(result)
}

/// A `location` with a physical location at `span`, the label's message
/// when it has one, and `id` when given (related locations have ids).
fn location(text: &str, uri: &str, span: Span, message: &str, id: Option<usize>) -> Value {
    let mut location = Map::new();
    if let Some(id) = id {
        location.insert("id".into(), json!(id));
    }
    location
        .insert("physicalLocation".into(), json!({ "artifactLocation": { "uri": uri }, "region": region(text, span) }));
    if !message.is_empty() {
        location.insert("message".into(), json!({ "text": message }));
    }
    Value::Object(location)
}

/// A region with both line/column and byte offset/length. `endColumn` is
/// the column just past the span, as SARIF has it; an empty span is an
/// insertion point.
fn region(text: &str, span: Span) -> Value {
    let span = clamp(text, span);
    let (start_line, start_column) = line_col(text, span.start);
    let (end_line, end_column) = line_col(text, span.end);
    json!({
        "startLine": start_line,
        "startColumn": start_column,
        "endLine": end_line,
        "endColumn": end_column,
        "byteOffset": span.start,
        "byteLength": span.end - span.start,
    })
}

/// The `artifactLocation.uri` of a file named `name`: backslashes become
/// forward slashes; a relative path stays relative; an absolute path becomes
/// a `file:` URI; characters a URI path may not hold are percent-encoded.
fn artifact_uri(name: &str) -> String {
    let path = name.replace('\\', "/");
    let bytes = path.as_bytes();
    let drive = matches!(bytes, [letter, b':', b'/', ..] if letter.is_ascii_alphabetic());
    if drive {
        // `C:/x` -> `file:///C:/x`; the drive's colon stays as it is.
        let (head, rest) = path.split_at(2);
        format!("file:///{head}{}", encode(rest))
    } else if path.starts_with('/') {
        format!("file://{}", encode(&path))
    } else {
        encode(&path)
    }
}

/// `path` with every byte that is not unreserved, a sub-delimiter, `@` or
/// `/` percent-encoded. `:` is encoded too, so that a relative path's first
/// segment is never read as a URI scheme.
fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@/".contains(&byte);
        if keep {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures;
    use crate::source::SourceFile;

    fn log() -> Value {
        let source = fixtures::policy();
        let diagnostics = fixtures::diagnostics();
        let empty = fixtures::empty();
        let empty_diagnostics = fixtures::empty_diagnostics();
        render(
            &[
                FileReport { source: &source, diagnostics: &diagnostics },
                FileReport { source: &empty, diagnostics: &empty_diagnostics },
            ],
            "0.1.0",
        )
    }

    #[test]
    fn log_shape() {
        let v = log();
        assert_eq!(v["$schema"], SCHEMA);
        assert_eq!(v["version"], "2.1.0");
        assert_eq!(v["runs"].as_array().unwrap().len(), 1);
        let run = &v["runs"][0];
        assert_eq!(run["columnKind"], "unicodeCodePoints");
        let driver = &run["tool"]["driver"];
        assert_eq!(driver["name"], "d4cc");
        assert_eq!(driver["version"], "0.1.0");
        assert_eq!(driver["informationUri"], INFORMATION_URI);
    }

    #[test]
    fn every_code_is_a_rule() {
        let v = log();
        let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), Code::ALL.len());
        for (rule, code) in rules.iter().zip(Code::ALL) {
            assert_eq!(rule["id"], code.id());
            assert_eq!(rule["name"], code.name());
            assert_eq!(rule["shortDescription"]["text"], code.summary());
            assert_eq!(rule["fullDescription"]["markdown"], code.explanation());
            assert_eq!(rule["help"]["markdown"], code.explanation());
            assert_eq!(rule["defaultConfiguration"]["level"], code.severity().as_str());
        }
    }

    #[test]
    fn results_point_at_their_rules() {
        let v = log();
        let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        let results = v["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        for result in results {
            let index = result["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[index]["id"], result["ruleId"]);
        }
        let ids: Vec<&str> = results.iter().map(|r| r["ruleId"].as_str().unwrap()).collect();
        assert_eq!(ids, ["D4C0007", "D4C0023", "D4C0008", "D4C0004"]);
        let levels: Vec<&str> = results.iter().map(|r| r["level"].as_str().unwrap()).collect();
        assert_eq!(levels, ["error", "warning", "error", "error"]);
    }

    #[test]
    fn duplicate_key_result() {
        let v = log();
        let r = &v["runs"][0]["results"][0];
        assert_eq!(r["message"]["text"], "the key `name` appears twice\nhelp: remove one of the two `name` keys");
        let first = fixtures::at("name", 0);
        let second = fixtures::at("name", first + 1);
        assert_eq!(
            r["locations"],
            json!([{
                "physicalLocation": {
                    "artifactLocation": { "uri": "policies/p.yaml" },
                    "region": { "startLine": 5, "startColumn": 7, "endLine": 5, "endColumn": 11, "byteOffset": second, "byteLength": 4 },
                },
                "message": { "text": "second `name`" },
            }])
        );
        assert_eq!(
            r["relatedLocations"],
            json!([{
                "id": 0,
                "physicalLocation": {
                    "artifactLocation": { "uri": "policies/p.yaml" },
                    "region": { "startLine": 3, "startColumn": 7, "endLine": 3, "endColumn": 11, "byteOffset": first, "byteLength": 4 },
                },
                "message": { "text": "first defined here" },
            }])
        );
        assert_eq!(
            r["fixes"],
            json!([{
                "description": { "text": "remove the second `name`" },
                "artifactChanges": [{
                    "artifactLocation": { "uri": "policies/p.yaml" },
                    "replacements": [{
                        "deletedRegion": { "byteOffset": second - 6, "byteLength": fixtures::POLICY.len() - (second - 6) },
                        "insertedContent": { "text": "" },
                    }],
                }],
            }])
        );
    }

    #[test]
    fn regions_after_multibyte_at_end_and_in_empty_file() {
        let v = log();
        let results = &v["runs"][0]["results"];
        // After `é`: columns count code points, offsets count bytes.
        let r = &results[1];
        assert_eq!(r["message"]["text"], "the value `é` appears twice");
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert_eq!((&region["startLine"], &region["startColumn"]), (&json!(4), &json!(9)));
        assert_eq!((&region["endLine"], &region["endColumn"]), (&json!(4), &json!(10)));
        assert_eq!(region["byteLength"], 2);
        assert!(r.get("relatedLocations").is_none());
        assert!(r.get("fixes").is_none());
        // A point at the end of the file, after its final newline; no label message.
        let r = &results[2];
        let end = fixtures::POLICY.len();
        assert_eq!(
            r["locations"][0],
            json!({ "physicalLocation": {
                "artifactLocation": { "uri": "policies/p.yaml" },
                "region": { "startLine": 6, "startColumn": 1, "endLine": 6, "endColumn": 1, "byteOffset": end, "byteLength": 0 },
            }})
        );
        // A point at 0 in an empty file.
        let r = &results[3];
        assert_eq!(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "%3Cstdin%3E");
        assert_eq!(
            r["locations"][0]["physicalLocation"]["region"],
            json!({ "startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1, "byteOffset": 0, "byteLength": 0 })
        );
    }

    #[test]
    fn stray_spans_are_clamped() {
        let source = SourceFile { name: "p.yaml".into(), text: "a: 日".into() };
        let diagnostics = [Diagnostic::new(Code::InvalidYaml, Span::new(4, 99), "x")];
        let v = render(&[FileReport { source: &source, diagnostics: &diagnostics }], "0");
        assert_eq!(
            v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"],
            json!({ "startLine": 1, "startColumn": 4, "endLine": 1, "endColumn": 5, "byteOffset": 3, "byteLength": 3 })
        );
    }

    #[test]
    fn no_reports() {
        let v = render(&[], "1.2.3");
        assert_eq!(v["runs"][0]["results"], json!([]));
        assert_eq!(v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap().len(), Code::ALL.len());
    }

    #[test]
    fn uris() {
        assert_eq!(artifact_uri("policies/p.yaml"), "policies/p.yaml");
        assert_eq!(artifact_uri("policies\\p.yaml"), "policies/p.yaml");
        assert_eq!(artifact_uri("./a b/p.yaml"), "./a%20b/p.yaml");
        assert_eq!(artifact_uri("/etc/d4c/p.yaml"), "file:///etc/d4c/p.yaml");
        assert_eq!(artifact_uri("C:\\d4c\\p.yaml"), "file:///C:/d4c/p.yaml");
        assert_eq!(artifact_uri("c:p.yaml"), "c%3Ap.yaml");
        assert_eq!(artifact_uri("50%/é.yaml"), "50%25/%C3%A9.yaml");
    }
}
