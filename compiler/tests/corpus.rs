//! The policy corpus: every file under `testdata/policies/` says in its
//! header what `d4cc lint` must report, and its rendered diagnostics (human
//! and JSON) are kept as snapshots. Adding a case is adding a file.
//!
//! Header lines (at the top, before any YAML):
//!
//! ```text
//! # <what the file exercises>
//! # expect: clean                      (no diagnostic at all)
//! # expect: D4C0014@12 D4C0024@7       (each code at its 1-based line; any order)
//! # schema: reject                     (optional; see tests/schema.rs)
//! ```

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4cc::lint::lint_bytes;
use d4cc::render::{human, json, line_col, FileReport};
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/policies")
}

/// The expected `(code, line)` pairs named in a file's header, sorted.
fn expectations(bytes: &[u8], path: &Path) -> Vec<(String, usize)> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut expected = Vec::new();
    let mut saw_expect = false;
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some(rest) = line.strip_prefix("# expect:") else { continue };
        saw_expect = true;
        for item in rest.split_whitespace() {
            if item == "clean" {
                continue;
            }
            let (code, line) = item
                .split_once('@')
                .unwrap_or_else(|| panic!("{}: bad expectation `{item}` (want CODE@LINE)", path.display()));
            let line: usize = line.parse().unwrap_or_else(|_| panic!("{}: bad line in `{item}`", path.display()));
            expected.push((code.to_string(), line));
        }
    }
    assert!(saw_expect, "{}: the header has no `# expect:` line", path.display());
    expected.sort();
    expected
}

#[test]
fn corpus() {
    insta::glob!("../../testdata/policies", "**/*.yaml", |path| {
        let bytes = std::fs::read(path).unwrap();
        let name = path.strip_prefix(corpus_dir().canonicalize().unwrap()).unwrap_or(path);
        let name = name.to_string_lossy().replace('\\', "/");
        let expected = expectations(&bytes, path);
        let (source, output) = lint_bytes(name.clone(), bytes);
        let mut actual: Vec<(String, usize)> = output
            .diagnostics
            .iter()
            .map(|d| (d.code.id().to_string(), line_col(&source.text, d.primary.span.start).0))
            .collect();
        actual.sort();
        let report = FileReport { source: &source, diagnostics: &output.diagnostics };
        let rendered = human::render(&report, false);
        assert_eq!(actual, expected, "{name}: diagnostics differ from the header's `# expect:`\n{rendered}");
        insta::assert_snapshot!("human", rendered);
        insta::assert_json_snapshot!("json", json::render(&[report]));
    });
}

/// A snapshot whose corpus file is gone must go too: CI rejects orphans.
#[test]
fn no_orphaned_snapshots() {
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let Ok(entries) = std::fs::read_dir(&snapshots) else { return };
    let mut orphans = Vec::new();
    for entry in entries {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        // Pending `.snap.new` files are insta's, not reviewed snapshots.
        let Some(rest) = name.strip_prefix("corpus__").and_then(|r| r.strip_suffix(".snap")) else { continue };
        let Some((_, file)) = rest.split_once('@') else { continue };
        let file = file.replace("__", "/");
        if !corpus_dir().join(&file).exists() {
            orphans.push(name);
        }
    }
    assert!(orphans.is_empty(), "snapshots without a corpus file (delete them): {orphans:?}");
}

/// Codes whose cases are too large for a corpus file, and the test that
/// covers each instead.
const COVERED_ELSEWHERE: &[(&str, &str)] = &[(
    "D4C0033",
    "tests/hostile.rs: over_the_selector_limit_names_the_figure, over_the_path_pattern_limit_names_the_figure, \
     compile_memory_of_deep_paths_is_bounded",
)];

/// The corpus covers every code with at least one file that expects it.
#[test]
fn every_code_has_a_corpus_case() {
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![corpus_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                for (code, _) in expectations(&std::fs::read(&path).unwrap(), &path) {
                    seen.insert(code);
                }
            }
        }
    }
    // Scenario codes are about `*.d4ct` files: tests/scenarios.rs covers them.
    let missing: Vec<&str> = d4cc::codes::Code::ALL
        .iter()
        .filter(|c| !c.is_scenario())
        .map(|c| c.id())
        .filter(|id| !seen.contains(*id) && !COVERED_ELSEWHERE.iter().any(|(code, _)| code == id))
        .collect();
    assert!(missing.is_empty(), "codes without a corpus case: {missing:?}");
}
