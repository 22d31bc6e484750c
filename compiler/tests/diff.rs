//! `d4cc diff`: the policy pairs in `testdata/diff/`, each compiled and
//! diffed, checked for what the case is about, and kept as insta snapshots
//! (human text and JSON).

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4c_artifact::eval::Tables;
use d4c_artifact::{aligned_copy, AlignedBytes, Artifact};
use d4cc::compile::{compile, CompileOptions};
use d4cc::diff::{diff, render_human, Change, DiffReport};
use std::path::{Path, PathBuf};

/// Examples the tests keep (what the CLI is expected to default to).
const MAX_EXAMPLES: usize = 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiles a policy file, which must lint without errors.
fn compile_file(path: &Path, name: &str, revision: u64) -> AlignedBytes {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, output) = d4cc::lint::lint_bytes(path.display().to_string(), bytes.clone());
    assert!(!output.has_errors(), "{} does not lint: {:?}", path.display(), output.diagnostics);
    let checked = output.checked.expect("a policy without errors has a checked model");
    let options = CompileOptions { policy_name: name.into(), revision, created_unix: None };
    aligned_copy(&compile(&bytes, &checked, &options).unwrap())
}

fn diff_files(old: &Path, new: &Path, name: &str, max_examples: usize) -> DiffReport {
    let (old_bytes, new_bytes) = (compile_file(old, name, 1), compile_file(new, name, 2));
    let (old, new) = (Artifact::parse(&old_bytes).unwrap(), Artifact::parse(&new_bytes).unwrap());
    let (old_tables, new_tables) = (Tables::read(&old).unwrap(), Tables::read(&new).unwrap());
    diff(&old, &old_tables, &new, &new_tables, max_examples)
}

/// Diffs a case of `testdata/diff/`, snapshots it, and returns the report.
fn case(name: &str) -> DiffReport {
    let dir = root().join("testdata/diff").join(name);
    let mut report = diff_files(&dir.join("old.yaml"), &dir.join("new.yaml"), name, MAX_EXAMPLES);
    // Digests change with the compiler version and the format: keep them
    // out of the snapshots.
    assert_eq!(report.old.content_digest.len(), 64);
    assert_ne!(report.old.content_digest, report.new.content_digest, "the revisions differ");
    report.old.content_digest = "[digest]".into();
    report.new.content_digest = "[digest]".into();
    insta::assert_snapshot!(format!("{name}_human"), render_human(&report));
    insta::assert_json_snapshot!(format!("{name}_json"), report);
    assert!(!report.capped && report.evaluations == report.candidates);
    report
}

fn has_example(report: &DiffReport, event: &str, container: &str, old: &str, new: &str) -> bool {
    report.examples.iter().any(|e| e.event == event && e.container == container && e.old == old && e.new == new)
}

#[test]
fn identical_policies_have_no_change() {
    let report = case("identical");
    assert!(report.is_empty(), "{report:#?}");
    assert_eq!(report.changed_decisions, 0);
    assert!(report.evaluations > 0);
    assert!(render_human(&report).contains("no change in meaning"));
}

#[test]
fn drift_alert_turned_into_block() {
    let report = case("drift-block");
    assert!(report.selectors.is_empty());
    assert_eq!(report.responses.len(), 1);
    let r = &report.responses[0];
    assert_eq!(
        (r.kind.as_str(), r.change, &r.matches[..]),
        ("file", Change::Altered, &["executableChanges".to_string()][..])
    );
    assert_eq!((r.old_actions.as_deref(), r.new_actions.as_deref()), (Some("alert"), Some("alert, block")));
    for op in ["createExecutable", "modifyExecutable"] {
        let example = report.examples.iter().find(|e| e.event.starts_with(op)).unwrap_or_else(|| panic!("no {op}"));
        assert_eq!(example.old, "alert [executableChanges]");
        assert_eq!(example.new, "alert, block [executableChanges]");
    }
    assert!(report
        .examples
        .iter()
        .all(|e| e.event.starts_with("createExecutable") || e.event.starts_with("modifyExecutable")));
}

#[test]
fn narrowed_target_file_path() {
    let report = case("narrowed-path");
    assert!(report.responses.is_empty());
    assert_eq!(report.selectors.len(), 1);
    let s = &report.selectors[0];
    assert_eq!((s.kind.as_str(), s.name.as_str(), s.change), ("file", "etcChanges", Change::Altered));
    assert!(s.old.contains(&"targetFilePath: [/etc/**]".to_string()));
    assert!(s.new.contains(&"targetFilePath: [/etc/ssh/**]".to_string()));
    // A path under /etc outside /etc/ssh goes from alert to allow...
    assert!(has_example(&report, "modifyFile /etc/example/deeper", "any container", "alert [etcChanges]", "allow"));
    // ... and nothing under /etc/ssh changes.
    assert!(report.examples.iter().all(|e| !e.event.contains("/etc/ssh") && e.new == "allow"));
}

#[test]
fn new_exclude_for_nginx() {
    let report = case("nginx-exclude");
    let added: Vec<_> = report.selectors.iter().map(|s| (s.name.as_str(), s.change)).collect();
    assert_eq!(added, [("nginx", Change::Added)]);
    let responses: Vec<_> = report.responses.iter().map(|r| (r.change, r.excludes.clone())).collect();
    assert_eq!(responses, [(Change::Removed, vec![]), (Change::Added, vec!["nginx".to_string()])]);
    assert!(has_example(&report, "modifyFile /etc", "image nginx", "alert, block [etcChanges]", "allow"));
    // Only nginx containers change.
    assert!(report.examples.iter().all(|e| e.container == "image nginx"));
}

#[test]
fn process_selector_added() {
    let report = case("process-added");
    let added: Vec<_> = report.selectors.iter().map(|s| (s.kind.as_str(), s.name.as_str(), s.change)).collect();
    assert_eq!(added, [("process", "interactiveDownloaders", Change::Added)]);
    assert_eq!(report.responses.len(), 1);
    assert_eq!((report.responses[0].change, report.responses[0].old_actions.as_deref()), (Change::Added, None));
    assert!(has_example(
        &report,
        "exec /usr/bin/curl (name curl, interactive)",
        "namespace prod",
        "allow",
        "alert [interactiveDownloaders]"
    ));
    // Not interactive, not in prod, or forked: unchanged.
    assert!(report.examples.iter().all(|e| e.event.starts_with("exec ")
        && e.event.ends_with(", interactive)")
        && e.container == "namespace prod"));
}

#[test]
fn examples_are_truncated_to_the_maximum() {
    let dir = root().join("testdata/diff/narrowed-path");
    let full = diff_files(&dir.join("old.yaml"), &dir.join("new.yaml"), "p", 1000);
    assert!(!full.examples_truncated);
    assert_eq!(full.examples.len(), full.changed_decisions);
    let few = diff_files(&dir.join("old.yaml"), &dir.join("new.yaml"), "p", 2);
    assert!(few.examples_truncated && few.examples.len() == 2);
    assert_eq!(few.changed_decisions, full.changed_decisions);
    assert!(render_human(&few).contains(&format!("2 of {} changed decisions shown", full.changed_decisions)));
    let none = diff_files(&dir.join("old.yaml"), &dir.join("new.yaml"), "p", 0);
    assert!(none.examples.is_empty() && none.examples_truncated);
    assert!(render_human(&none).contains(&format!("0 of {} changed decisions shown", full.changed_decisions)));
    assert!(!none.is_empty(), "the selector change remains");
}

/// Every shipped policy diffed against itself is empty, and against its
/// neighbour gives mirrored reports.
#[test]
fn corpus_policies_diff_consistently() {
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in ["testdata/policies/valid", "deploy/policies"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    assert!(paths.len() > 20);
    for (a, b) in paths.iter().zip(paths.iter().cycle().skip(1)) {
        let same = diff_files(a, a, "p", MAX_EXAMPLES);
        assert!(same.is_empty(), "{} against itself: {same:#?}", a.display());
        let forward = diff_files(a, b, "p", MAX_EXAMPLES);
        let backward = diff_files(b, a, "p", MAX_EXAMPLES);
        let what = format!("{} -> {}", a.display(), b.display());
        assert_eq!(forward.changed_decisions, backward.changed_decisions, "{what}");
        assert_eq!(forward.candidates, backward.candidates, "{what}");
        assert_eq!(forward.selectors.len(), backward.selectors.len(), "{what}");
        assert_eq!(forward.responses.len(), backward.responses.len(), "{what}");
        assert_eq!(forward.examples.len(), backward.examples.len(), "{what}");
        let (once, twice) = (render_human(&forward), render_human(&diff_files(a, b, "p", MAX_EXAMPLES)));
        assert_eq!(once, twice, "{what}: not deterministic");
    }
}

/// A policy compiled as a hostile producer would: lint errors (`D4C0042`
/// for the control characters) ignored.
fn compile_text(policy: &str, name: &str, revision: u64) -> AlignedBytes {
    let (_, output) = d4cc::lint::lint_bytes("policy.yaml", policy.as_bytes().to_vec());
    let options = CompileOptions { policy_name: name.into(), revision, created_unix: None };
    aligned_copy(&compile(policy.as_bytes(), &output.checked.unwrap(), &options).unwrap())
}

/// Regression (issue 14, fault 12): `diff` printed a path's carriage
/// return raw, so that `/x\r/etc/passwd` read as `/etc/passwd`.
#[test]
fn control_characters_are_escaped_in_diff() {
    let policy = |path: &str| {
        format!("file:\n  selectors:\n    - name: passwd\n      operation: [modifyFile]\n      targetFilePath: [\"{path}\"]\n  responses:\n    - match: [passwd]\n      actions: [alert]\n")
    };
    let old_bytes = compile_text(&policy("/etc/passwd"), "web", 1);
    let new_bytes = compile_text(&policy("/x\\r/etc/passwd"), "web\u{1b}[2J", 2);
    let (old, new) = (Artifact::parse(&old_bytes).unwrap(), Artifact::parse(&new_bytes).unwrap());
    let (old_tables, new_tables) = (Tables::read(&old).unwrap(), Tables::read(&new).unwrap());
    let text = render_human(&diff(&old, &old_tables, &new, &new_tables, MAX_EXAMPLES));
    assert!(!text.contains(['\r', '\u{1b}']), "{text:?}");
    assert!(text.contains("/x\\r/etc/passwd") && text.contains("web\\u{1b}[2J"), "{text}");
}
