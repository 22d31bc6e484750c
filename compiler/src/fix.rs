//! Applying mechanical fixes to source text (`d4cc fix`, `lint --fix`).
//!
//! Only the bytes a fix names change: comments, formatting and everything
//! else in the file stay as written.
//!
//! Invariants: a fix never removes a YAML anchor that an alias uses, nor
//! rewrites an alias or what an alias stands for (such a fix is skipped,
//! and said so); and the fixed text is linted again before it is offered:
//! text that no longer parses, or has more errors than before, is refused
//! as a whole (fail closed), the file left as it was.

use crate::codes::{Code, Severity};
use crate::diag::{Diagnostic, Edit};
use crate::lint::{lint_bytes, LintOutput};
use crate::render::line_col;
use crate::source::{CharToByte, SourceFile};
use crate::span::Span;
use saphyr_parser::{Event, Parser, SpannedEventReceiver};

/// A fix that was not applied, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The fix's description.
    pub description: String,
    /// The line (1-based) of its first edit.
    pub line: usize,
    /// The column (1-based, in characters) of its first edit.
    pub column: usize,
    /// Why it was skipped (lowercase, the user's text in backticks).
    pub reason: String,
}

/// What applying every fix to a file gives.
#[derive(Debug)]
pub struct FixOutcome {
    /// The fixed text, when a fix was applied and the result passed the
    /// checks; `None` when nothing changed or the result was refused.
    pub text: Option<String>,
    /// The source and lint output to report: of the fixed text, or of the
    /// original when nothing is written.
    pub source: SourceFile,
    /// See `source`.
    pub output: LintOutput,
    /// How many fixes were applied.
    pub applied: usize,
    /// The fixes skipped because of anchors and aliases.
    pub skipped: Vec<Skipped>,
    /// Why the fixed text was refused, when it was.
    pub refused: Option<String>,
}

/// Applies the fixes of `output` (the lint output of `source`) until none
/// is left, at most a few rounds (a renamed key gets its value checked,
/// which can offer another fix), then checks the result: it must still
/// parse and have no more errors than the original, or nothing is written.
pub fn fix_source(source: SourceFile, output: LintOutput) -> FixOutcome {
    let mut skipped = Vec::new();
    let mut applied = 0;
    let (mut current_source, mut current) = (source.clone(), None::<LintOutput>);
    for _ in 0..4 {
        let diagnostics = current.as_ref().map_or(&output.diagnostics, |o| &o.diagnostics);
        let round = apply_fixes(&current_source.text, diagnostics);
        // The fixes skipped in the last round are those left undone (a fix
        // skipped at an alias can be done at its anchor in the same round).
        skipped = round.skipped;
        if round.applied == 0 {
            break;
        }
        applied += round.applied;
        let (fixed_source, fixed_output) = lint_bytes(source.name.clone(), round.text.into_bytes());
        current_source = fixed_source;
        current = Some(fixed_output);
    }
    let Some(fixed) = current else {
        return FixOutcome { text: None, source, output, applied: 0, skipped, refused: None };
    };
    match worse(&output, &fixed, &current_source.text) {
        Some(reason) => FixOutcome { text: None, source, output, applied: 0, skipped, refused: Some(reason) },
        None => FixOutcome {
            text: Some(current_source.text.clone()),
            source: current_source,
            output: fixed,
            applied,
            skipped,
            refused: None,
        },
    }
}

/// Why the fixed text (`after`, linted) is worse than the original
/// (`before`): it no longer reads as one YAML document, or it has more
/// errors. `None` when it is not.
fn worse(before: &LintOutput, after: &LintOutput, text: &str) -> Option<String> {
    let unreadable = |d: &Diagnostic| {
        matches!(d.code, Code::InvalidUtf8 | Code::InvalidYaml | Code::InputLimit | Code::DocumentCount)
    };
    if let Some(d) = after.diagnostics.iter().find(|d| unreadable(d) && !before.diagnostics.iter().any(unreadable)) {
        let (line, column) = line_col(text, d.primary.span.start);
        return Some(format!(
            "the fixed text would not parse ({}[{}] at {line}:{column}: {})",
            d.severity.as_str(),
            d.code.id(),
            d.message
        ));
    }
    let errors = |o: &LintOutput| o.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    if errors(after) > errors(before) {
        return Some(format!(
            "the fixed text would have more errors than the file has ({} instead of {})",
            errors(after),
            errors(before)
        ));
    }
    None
}

/// What one round of [`apply_fixes`] gives.
#[derive(Debug)]
pub struct Applied {
    /// The text with the fixes applied.
    pub text: String,
    /// How many fixes were applied.
    pub applied: usize,
    /// The fixes skipped because of anchors and aliases.
    pub skipped: Vec<Skipped>,
}

/// The text with every fix of `diagnostics` applied. A fix whose edits
/// overlap an earlier fix's is left for the next round (the next lint run
/// offers it again on the new text); a fix that would remove an anchor an
/// alias uses, or rewrite an alias, is skipped with the reason.
pub fn apply_fixes(text: &str, diagnostics: &[Diagnostic]) -> Applied {
    let marks = Marks::of(text);
    let mut chosen: Vec<&Edit> = Vec::new();
    let mut applied = 0;
    let mut skipped = Vec::new();
    for fix in diagnostics.iter().filter_map(|d| d.fix.as_ref()) {
        let overlaps = fix.edits.iter().any(|e| {
            chosen.iter().any(|c| e.span.start < c.span.end && c.span.start < e.span.end)
                || text.get(e.span.range()).is_none()
        });
        if overlaps {
            continue;
        }
        if let Some(reason) = fix.edits.iter().find_map(|e| marks.harm(text, e)) {
            let (line, column) = line_col(text, fix.edits.first().map_or(0, |e| e.span.start));
            skipped.push(Skipped { description: fix.description.clone(), line, column, reason });
            continue;
        }
        chosen.extend(&fix.edits);
        applied += 1;
    }
    chosen.sort_by_key(|e| e.span.start);
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for edit in chosen {
        out.push_str(text.get(at..edit.span.start).unwrap_or_default());
        out.push_str(&edit.replacement);
        at = edit.span.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    Applied { text: out, applied, skipped }
}

/// An anchor (`&name`) or an alias (`*name`) as written.
#[derive(Clone, Debug)]
struct Mark {
    /// The parser's id of the anchor (an alias has its anchor's).
    id: usize,
    /// The `&name` or `*name` token.
    token: Span,
    /// For an anchor: the whole anchored node (to where it ends).
    node: Span,
    /// Whether the anchored node is a scalar.
    scalar: bool,
}

/// The anchors and aliases of a text.
#[derive(Debug, Default)]
struct Marks {
    anchors: Vec<Mark>,
    aliases: Vec<Mark>,
}

impl Marks {
    /// The anchors and aliases of `text`; none when it does not parse.
    fn of(text: &str) -> Marks {
        if !text.contains(['&', '*']) {
            return Marks::default();
        }
        let mut finder =
            MarkFinder { text, positions: CharToByte::new(text), marks: Marks::default(), open: Vec::new() };
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut finder, true).is_err() {
            return Marks::default();
        }
        let mut marks = finder.marks;
        for alias in &mut marks.aliases {
            if let Some(anchor) = marks.anchors.iter().rev().find(|a| a.id == alias.id) {
                alias.scalar = anchor.scalar;
                alias.node = anchor.node;
            }
        }
        marks
    }

    /// Why `edit` would harm an anchor or an alias, if it would.
    fn harm(&self, text: &str, edit: &Edit) -> Option<String> {
        let inside = |token: Span| edit.span.start <= token.start && token.end <= edit.span.end;
        let overlaps = |span: Span| span.start < edit.span.end && edit.span.start < span.end;
        let token_text = |token: Span| text.get(token.range()).unwrap_or_default();
        let line = |span: Span| line_col(text, span.start).0;
        for anchor in &self.anchors {
            let Some(alias) = self.aliases.iter().find(|a| a.id == anchor.id) else { continue };
            let name = token_text(anchor.token);
            if overlaps(anchor.token) && !(inside(anchor.token) && edit.replacement.contains(name)) {
                return Some(format!(
                    "it would remove the anchor `{name}`, which the alias `{}` on line {} uses",
                    token_text(alias.token),
                    line(alias.token)
                ));
            }
        }
        for alias in &self.aliases {
            if !overlaps(alias.token) {
                continue;
            }
            let name = token_text(alias.token);
            if !alias.scalar {
                return Some(format!(
                    "it would change what the alias `{name}` stands for here; fix the anchored original on line {}",
                    line(alias.node)
                ));
            }
            if !(inside(alias.token) && edit.replacement.contains(name)) {
                return Some(format!("it would replace the alias `{name}`"));
            }
        }
        None
    }
}

/// Collects [`Marks`] from the parser's events.
struct MarkFinder<'a> {
    text: &'a str,
    positions: CharToByte<'a>,
    marks: Marks,
    /// Open collections: the anchor mark's index, if anchored.
    open: Vec<Option<usize>>,
}

impl MarkFinder<'_> {
    /// The byte span of a parser span.
    fn bytes(&self, span: saphyr_parser::Span) -> Span {
        Span::new(self.positions.byte(span.start.index()), self.positions.byte(span.end.index()))
    }

    /// The `&name` token of an anchor on the node whose event is at `at`:
    /// the event starts with it, or it is the last `&` before.
    fn anchor_token(&self, at: Span) -> Span {
        let before = self.text.get(..at.end).unwrap_or_default();
        let start = if self.text.get(at.start..).is_some_and(|t| t.starts_with('&')) {
            at.start
        } else {
            before.rfind('&').unwrap_or(at.start)
        };
        let rest = self.text.get(start..).unwrap_or_default();
        let end = start
            + rest.find(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}')).unwrap_or(rest.len());
        Span::new(start, end)
    }
}

impl<'input> SpannedEventReceiver<'input> for MarkFinder<'_> {
    fn on_event(&mut self, event: Event<'input>, span: saphyr_parser::Span) {
        let at = self.bytes(span);
        match event {
            Event::Scalar(_, _, anchor, _) if anchor != 0 => {
                let token = self.anchor_token(at);
                self.marks.anchors.push(Mark { id: anchor, token, node: token.to(at), scalar: true });
            }
            Event::Alias(id) => self.marks.aliases.push(Mark { id, token: at, node: at, scalar: true }),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if anchor == 0 {
                    self.open.push(None);
                } else {
                    let token = self.anchor_token(at);
                    self.marks.anchors.push(Mark { id: anchor, token, node: token, scalar: false });
                    self.open.push(Some(self.marks.anchors.len() - 1));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(Some(index)) = self.open.pop() {
                    if let Some(anchor) = self.marks.anchors.get_mut(index) {
                        anchor.node = anchor.node.to(at);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::lint_bytes;

    fn fixed(text: &str) -> String {
        let (_, output) = lint_bytes("t.yaml", text.as_bytes().to_vec());
        apply_fixes(text, &output.diagnostics).text
    }

    #[test]
    fn renames_legacy_keys_keeping_comments() {
        let text = "# keep me\nfile:\n  selectors:\n    - name: a   # and me\n      operation: [createExecutable]\n      orchestratorNamespace: [default]\n  responses:\n    - match: [a]\n      actions: [alert]\n";
        let out = fixed(text);
        assert_eq!(out, text.replace("orchestratorNamespace", "kubernetesNamespace"));
    }

    #[test]
    fn quotes_numbers_and_wraps_lone_strings() {
        let text = "process:\n  selectors:\n    - name: a\n      operation: exec\n      processName: [1234]\n  responses:\n    - match: [a]\n      actions: [log]\n";
        let out = fixed(text);
        assert!(out.contains("operation: [exec]"), "{out}");
        assert!(out.contains("processName: [\"1234\"]"), "{out}");
    }

    #[test]
    fn adds_alert_before_block_in_flow_and_block_lists() {
        let flow = "process:\n  selectors:\n    - name: a\n      operation: [exec]\n  responses:\n    - match: [a]\n      actions: [block]\n";
        assert!(fixed(flow).contains("actions: [alert, block]"));
        let block = "process:\n  selectors:\n    - name: a\n      operation: [exec]\n  responses:\n    - match: [a]\n      actions:\n        - block\n";
        assert!(fixed(block).contains("actions:\n        - alert\n        - block\n"), "{}", fixed(block));
    }

    #[test]
    fn fixed_text_lints_clean() {
        let text = "file:\n  selectors:\n    - name: a\n      operation: createExecutable\n      fullContainerImageName: [docker.io/nginx]\n  responses:\n    - match: [a]\n      actions: [block]\n";
        let out = fixed(text);
        let (_, output) = lint_bytes("t.yaml", out.as_bytes().to_vec());
        assert!(output.diagnostics.is_empty(), "{out}\n{:#?}", output.diagnostics);
    }

    const ANCHORED: &str = "process:\n  selectors:\n    - name: a\n      operation: [exec]\n    - name: b\n      operation: [fork]\n  responses:\n    - match: [a]\n      actions: [alert, &b block]\n    - match: [b]\n      actions: [*b]\n";

    /// Regression (issue 14, fault 11): `D4C0028` pointed at `&b block`
    /// in the first response (which alerts), not at the `*b` of the one
    /// that blocks without alerting.
    #[test]
    fn block_without_alert_points_at_the_alias_that_blocks() {
        let (source, output) = lint_bytes("t.yaml", ANCHORED.as_bytes().to_vec());
        let spans: Vec<_> = output.diagnostics.iter().map(|d| (d.code, &source.text[d.primary.span.range()])).collect();
        assert_eq!(spans, [(Code::BlockWithoutAlert, "*b")]);
        assert_eq!(line_col(&source.text, output.diagnostics[0].primary.span.start), (11, 17));
    }

    /// Regression (issue 14, fault 11): the fix deleted the anchor `&b`
    /// and left a file that did not parse.
    #[test]
    fn fix_keeps_yaml_anchors_and_the_result_parses() {
        let (source, output) = lint_bytes("t.yaml", ANCHORED.as_bytes().to_vec());
        let outcome = fix_source(source, output);
        assert_eq!(outcome.text.as_deref(), Some(ANCHORED.replace("[*b]", "[alert, *b]").as_str()));
        assert!(outcome.output.diagnostics.is_empty(), "{:#?}", outcome.output.diagnostics);
        assert!(outcome.skipped.is_empty() && outcome.refused.is_none());
    }

    /// Issue 14, fault 11: a fix inside what an alias stands for is done
    /// at the anchor, never at the alias (which would add a response).
    #[test]
    fn a_fix_through_an_alias_of_a_map_is_made_at_its_anchor() {
        let text = "process:\n  selectors:\n    - name: a\n      operation: [exec]\n  responses:\n    - &r\n      match: [a]\n      actions: [block]\n    - *r\n";
        let (source, output) = lint_bytes("t.yaml", text.as_bytes().to_vec());
        let round = apply_fixes(&source.text, &output.diagnostics);
        assert_eq!(round.skipped.len(), 1, "{round:#?}");
        assert!(round.skipped[0].reason.contains("what the alias `*r` stands for"), "{round:#?}");
        let outcome = fix_source(source, output);
        assert_eq!(outcome.text.as_deref(), Some(text.replace("[block]", "[alert, block]").as_str()));
        assert!(outcome.skipped.is_empty() && outcome.refused.is_none(), "{outcome:#?}");
    }

    /// Issue 14, fault 11: fixed text that no longer parses is refused
    /// (fail closed), whatever fix made it.
    #[test]
    fn fix_refuses_text_that_no_longer_parses() {
        let text = "process:\n  selectors:\n    - name: a\n      operation: exec\n  responses:\n    - match: [a]\n      actions: [alert]\n";
        let (source, mut output) = lint_bytes("t.yaml", text.as_bytes().to_vec());
        assert_eq!(output.diagnostics.len(), 1);
        // A broken fix, as a bug in a rule could make one.
        if let Some(fix) = output.diagnostics[0].fix.as_mut() {
            fix.edits[0].replacement = "[exec".to_string();
        }
        let outcome = fix_source(source, output);
        assert_eq!(outcome.text, None);
        assert_eq!(outcome.source.text, text);
        let reason = outcome.refused.unwrap_or_default();
        assert!(reason.starts_with("the fixed text would not parse (error[D4C0002] at"), "{reason}");
    }

    /// Issue 14, fault 11: fixed text with more errors is refused too.
    #[test]
    fn fix_refuses_text_with_more_errors() {
        let text = "process:\n  selectors:\n    - name: a\n      operation: exec\n  responses:\n    - match: [a]\n      actions: [alert]\n";
        let (source, mut output) = lint_bytes("t.yaml", text.as_bytes().to_vec());
        if let Some(fix) = output.diagnostics[0].fix.as_mut() {
            fix.edits[0].replacement = "[exec, spawn, fly]".to_string();
        }
        let outcome = fix_source(source, output);
        assert_eq!(outcome.text, None);
        assert_eq!(
            outcome.refused.as_deref(),
            Some("the fixed text would have more errors than the file has (2 instead of 1)")
        );
    }
}
