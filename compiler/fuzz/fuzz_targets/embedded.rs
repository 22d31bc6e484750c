//! Fuzz target `embedded`: arbitrary text as the policy string of a Fleet
//! package policy exported as JSON, the form whose diagnostics and fixes
//! are mapped from a decoded string back to the file's bytes.
//!
//! The text is written as a JSON string, its non-ASCII characters escaped
//! as `\uXXXX` for inputs of odd length (raw otherwise). For any input:
//! - nothing panics, every span is a character range of the file;
//! - read embedded or read alone, the text gets the same diagnostics
//!   (codes, in order);
//! - the file with its fixes applied is still JSON, and its string is the
//!   text with the same fixes applied alone.
#![no_main]

use d4cc::fix::apply_fixes;
use d4cc::lint::lint_bytes;
use d4cc::locate::Form;
use d4cc::span::Span;
use libfuzzer_sys::fuzz_target;

fn check_span(text: &str, span: Span) {
    assert!(span.start <= span.end && span.end <= text.len());
    assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
}

fn json_string(text: &str, escape_non_ascii: bool) -> String {
    let plain = serde_json::to_string(text).unwrap_or_default();
    if !escape_non_ascii {
        return plain;
    }
    plain
        .chars()
        .map(|c| if c.is_ascii() || c.len_utf16() > 1 { c.to_string() } else { format!("\\u{:04x}", u32::from(c)) })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let (alone_source, alone) = lint_bytes("alone.yaml", text.clone().into_bytes());
    let file = format!(
        "{{\"item\": {{\"id\": \"p\", \"revision\": 1, \"package\": {{\"name\": \"cloud_defend\"}}, \"inputs\": [{{\"type\": \"cloud_defend/control\", \"vars\": {{\"configuration\": {{\"type\": \"yaml\", \"value\": {}}}}}}}]}}}}\n",
        json_string(&text, data.len() % 2 == 1)
    );
    let (source, output) = lint_bytes("fleet.json", file.clone().into_bytes());
    for d in &output.diagnostics {
        check_span(&source.text, d.primary.span);
        d.secondary.iter().for_each(|l| check_span(&source.text, l.span));
        d.fix.iter().flat_map(|f| &f.edits).for_each(|e| check_span(&source.text, e.span));
    }
    // Blank text is refused as no policy (D4C0039) embedded; surrogates and
    // other strings the parser refuses stop both readings differently.
    if output.form != Form::FleetPackagePolicy || alone.form != Form::Policy || text.trim().is_empty() {
        return;
    }
    // Read alone, the text is also looked into for an agent configuration
    // or package policy (`D4C0039`..`D4C0041`); embedded, it is a policy.
    use d4cc::codes::Code;
    let located = [Code::InvalidUtf8, Code::PolicyLocation, Code::PolicyMetadata, Code::AmbiguousForm];
    if alone.diagnostics.iter().any(|d| located.contains(&d.code)) {
        return;
    }
    let mut codes: Vec<&str> = output.diagnostics.iter().map(|d| d.code.id()).collect();
    let mut alone_codes: Vec<&str> = alone.diagnostics.iter().map(|d| d.code.id()).collect();
    codes.sort_unstable();
    alone_codes.sort_unstable();
    assert_eq!(codes, alone_codes, "embedded and alone disagree");

    let (fixed_alone, applied_alone) = apply_fixes(&alone_source.text, &alone.diagnostics);
    let (fixed, applied) = apply_fixes(&source.text, &output.diagnostics);
    assert_eq!(applied, applied_alone, "not the same fixes");
    if applied == 0 {
        return;
    }
    let value: serde_json::Value = serde_json::from_str(&fixed).unwrap_or_else(|e| panic!("the fixed file is not JSON: {e}"));
    let inner = value.pointer("/item/inputs/0/vars/configuration/value").and_then(|v| v.as_str());
    assert_eq!(inner, Some(fixed_alone.as_str()), "the fixed string differs from the text fixed alone");
});
