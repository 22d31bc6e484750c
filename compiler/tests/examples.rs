//! Every policy a user is shown must lint as promised: the example policies
//! under `deploy/`, the YAML blocks of the README, and the bad and good
//! examples of every code's explanation.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4cc::codes::{Code, Severity};
use d4cc::lint::lint_bytes;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The fenced ```yaml blocks of a Markdown text, with the heading above each.
fn yaml_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            Some(block) if line.trim_start().starts_with("```") => {
                blocks.push((heading.clone(), std::mem::take(block)));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None if line.trim_start().starts_with("```yaml") || line.trim_start().starts_with("```d4ct") => {
                current = Some(String::new())
            }
            None if line.starts_with('#') => heading = line.trim_start_matches('#').trim().to_string(),
            None => {}
        }
    }
    blocks
}

fn lint_text(name: &str, text: &str) -> Vec<d4cc::diag::Diagnostic> {
    lint_bytes(name, text.as_bytes().to_vec()).1.diagnostics
}

#[test]
fn deploy_policies_are_clean() {
    let dir = root().join("deploy/policies");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let diagnostics = lint_text(&path.display().to_string(), &text);
            assert!(diagnostics.is_empty(), "{}: {diagnostics:#?}", path.display());
            count += 1;
        }
    }
    assert!(count >= 2, "expected the shipped policies in {}", dir.display());
}

/// README blocks are clean policies, except those under a heading that
/// mentions a diagnostic: those must produce at least one.
#[test]
fn readme_policies_lint_as_shown() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks = yaml_blocks(&readme);
    assert!(!blocks.is_empty(), "the README shows no policy");
    for (heading, block) in blocks {
        let diagnostics = lint_text("README.md", &block);
        if heading.to_lowercase().contains("diagnos") || heading.to_lowercase().contains("mistake") {
            assert!(!diagnostics.is_empty(), "README block under `{heading}` should show a diagnostic");
        } else {
            assert!(diagnostics.is_empty(), "README block under `{heading}`:\n{block}\n{diagnostics:#?}");
        }
    }
}

#[test]
fn explanations_have_a_bad_and_a_good_example_that_behave() {
    for &code in Code::ALL {
        let text = code.explanation();
        assert!(
            text.starts_with(&format!("# {} `{}`: ", code.id(), code.name())),
            "{}: the explanation must start with `# {} `{}`: <summary>`",
            code.id(),
            code.id(),
            code.name()
        );
        let blocks = yaml_blocks(text);
        let bad = blocks.iter().find(|(h, _)| h == "Bad").map(|(_, b)| b.clone());
        let good = blocks.iter().find(|(h, _)| h == "Good").map(|(_, b)| b.clone());
        let (Some(bad), Some(good)) = (bad, good) else {
            panic!("{}: needs a `## Bad` and a `## Good` yaml block", code.id())
        };
        if code.is_scenario() {
            // Scenario examples are run by tests/scenarios.rs.
            continue;
        }
        // A network example is refused by `D4C0044` until the tables hold
        // network rules; it must be clean but for that.
        let good_diagnostics: Vec<_> =
            lint_text("good.yaml", &good).into_iter().filter(|d| d.code != Code::NetworkNotCompiled).collect();
        assert!(good_diagnostics.is_empty(), "{}: the good example is not clean: {good_diagnostics:#?}", code.id());
        if bad.starts_with("# (abbreviated)") {
            continue;
        }
        let bytes = if code == Code::InvalidUtf8 {
            // Markdown cannot hold the raw byte; the example writes `\xff`.
            bad.replace("\\xff", "\u{0}").into_bytes().into_iter().map(|b| if b == 0 { 0xff } else { b }).collect()
        } else {
            bad.into_bytes()
        };
        let (_, output) = lint_bytes("bad.yaml", bytes);
        assert!(
            output.diagnostics.iter().any(|d| d.code == code),
            "{}: the bad example does not report it: {:#?}",
            code.id(),
            output.diagnostics
        );
        assert_eq!(
            code.severity() == Severity::Error,
            output.diagnostics.iter().any(|d| d.code == code && d.severity == Severity::Error),
            "{}: severity",
            code.id()
        );
    }
}
