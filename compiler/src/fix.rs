//! Applying mechanical fixes to source text (`d4cc fix`, `lint --fix`).
//!
//! Only the bytes a fix names change: comments, formatting and everything
//! else in the file stay as written.

use crate::diag::{Diagnostic, Edit};

/// The text with every fix of `diagnostics` applied, and how many fixes were
/// applied. A fix whose edits overlap an earlier fix's is skipped (the next
/// lint run offers it again on the new text).
pub fn apply_fixes(text: &str, diagnostics: &[Diagnostic]) -> (String, usize) {
    let mut chosen: Vec<&Edit> = Vec::new();
    let mut applied = 0;
    for fix in diagnostics.iter().filter_map(|d| d.fix.as_ref()) {
        let overlaps = fix.edits.iter().any(|e| {
            chosen.iter().any(|c| e.span.start < c.span.end && c.span.start < e.span.end)
                || text.get(e.span.range()).is_none()
        });
        if !overlaps {
            chosen.extend(&fix.edits);
            applied += 1;
        }
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
    (out, applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::lint_bytes;

    fn fixed(text: &str) -> String {
        let (_, output) = lint_bytes("t.yaml", text.as_bytes().to_vec());
        apply_fixes(text, &output.diagnostics).0
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
}
