//! Fuzz target `lint`: arbitrary bytes through the whole front end.
//!
//! For any input, none of this may panic, hang or use unbounded memory:
//! 1. `d4cc::lint::lint_bytes` (decode, YAML tree, syntax, checks);
//! 2. the three renderers (human, in colour for odd-length inputs; the
//!    summary; JSON; SARIF for one input length in four), which clamp every
//!    span to the text;
//! 3. `d4cc::fix::apply_fixes`, then a second lint of the fixed text.
//!
//! And these properties hold:
//! - every span of every diagnostic (primary, secondary, fix edits) is
//!   `start <= end <= text.len()` on character boundaries (the invariant of
//!   `d4cc::span::Span`), so a fix never cuts a character in two;
//! - the fixed text is UTF-8 when re-read as bytes (`D4C0001` never appears
//!   on it);
//! - a fix never turns well-formed YAML into malformed YAML (`D4C0002`).
#![no_main]

use d4cc::codes::Code;
use d4cc::fix::apply_fixes;
use d4cc::lint::lint_bytes;
use d4cc::render::{self, FileReport};
use d4cc::span::Span;
use libfuzzer_sys::fuzz_target;

fn check_span(text: &str, span: Span, what: &str) {
    assert!(
        span.start <= span.end
            && span.end <= text.len()
            && text.is_char_boundary(span.start)
            && text.is_char_boundary(span.end),
        "{what} span {}..{} is not a character range of the {}-byte text",
        span.start,
        span.end,
        text.len()
    );
}

fuzz_target!(|data: &[u8]| {
    let (source, output) = lint_bytes("fuzz.yaml", data.to_vec());
    let text = source.text.as_str();
    for d in &output.diagnostics {
        check_span(text, d.primary.span, d.code.id());
        for label in &d.secondary {
            check_span(text, label.span, "secondary label");
        }
        for edit in d.fix.iter().flat_map(|f| &f.edits) {
            check_span(text, edit.span, "fix edit");
        }
    }

    let report = FileReport { source: &source, diagnostics: &output.diagnostics };
    // Colour or not by the input's length: both paths run, half the cost.
    std::hint::black_box(render::human::render(&report, data.len() % 2 == 1));
    std::hint::black_box(render::human::summary(&[report]));
    std::hint::black_box(render::json::render(&[report]).to_string());
    // SARIF carries the rule table (every code's explanation) whatever the
    // input, and building it costs more than linting: render it for one
    // input length in four (a property of the input, so runs reproduce), and
    // serialize only the part that depends on the input.
    if data.len() % 4 == 0 {
        let sarif = render::sarif::render(&[report], "fuzz");
        std::hint::black_box(sarif.pointer("/runs/0/results").map(ToString::to_string));
    }

    let (fixed, applied) = apply_fixes(text, &output.diagnostics);
    if applied == 0 {
        return;
    }
    let was_yaml =
        !output.diagnostics.iter().any(|d| matches!(d.code, Code::InvalidYaml | Code::InvalidUtf8 | Code::InputLimit));
    let (_, again) = lint_bytes("fixed.yaml", fixed.into_bytes());
    for d in &again.diagnostics {
        assert!(d.code != Code::InvalidUtf8, "the fixed text is not UTF-8: {}", d.message);
        assert!(!(was_yaml && d.code == Code::InvalidYaml), "a fix broke the YAML: {}", d.message);
    }
});
