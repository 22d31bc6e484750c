//! Scenario files (`*.d4ct`): every file under `testdata/scenarios/` must
//! run clean with the table evaluator (`d4cc test`), and the bad and good
//! scenario examples in the explanations of the scenario codes (D4C0034,
//! D4C0035, D4C0036) must behave as they say.
//!
//! A step whose expectation is right but which the compiler currently gets
//! wrong is marked `# BUG: ...` in its file: it fails here until the
//! compiler is fixed, never the other way round.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4cc::codes::Code;
use d4cc::render::{human, FileReport};
use d4cc::scenario::{test_file, FileOutcome};
use std::path::{Path, PathBuf};

/// Fewer steps than this means scenario files went missing.
const MIN_STEPS: usize = 500;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `*.d4ct` below `dir`, sorted.
fn scenario_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            scenario_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "d4ct") {
            out.push(path);
        }
    }
}

fn run(path: &Path, name: &str) -> FileOutcome {
    test_file(path, name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn rendered(outcome: &FileOutcome) -> String {
    human::render(&FileReport { source: &outcome.source, diagnostics: &outcome.diagnostics }, false)
}

#[test]
fn every_scenario_file_passes() {
    let dir = root().join("testdata/scenarios");
    let mut files = Vec::new();
    scenario_files(&dir, &mut files);
    assert!(!files.is_empty(), "no scenario files in {}", dir.display());
    let mut total = 0;
    let mut failures = String::new();
    for path in &files {
        let name = path.strip_prefix(&dir).unwrap_or(path).display().to_string();
        let outcome = run(path, &name);
        total += outcome.steps;
        if !outcome.diagnostics.is_empty() {
            failures.push_str(&format!(
                "{name}: {} of {} steps failed, {} problem(s)\n{}\n",
                outcome.failed,
                outcome.steps,
                outcome.diagnostics.len() - outcome.failed,
                rendered(&outcome)
            ));
        }
        assert!(outcome.steps > 0, "{name}: no step ran");
    }
    assert!(failures.is_empty(), "scenario failures (`d4cc test testdata/scenarios` shows the same):\n{failures}");
    assert!(total >= MIN_STEPS, "only {total} steps ran in {} files; expected at least {MIN_STEPS}", files.len());
}

/// The policy the explanations' examples run against (`policy.yaml` next to
/// them). `deploy/policies/default.yaml` has `executableChanges`, which the
/// D4C0036 example names, but no `etcChanges`, which the D4C0035 example
/// names; this policy has both, with the default policy's drift alert.
const EXAMPLE_POLICY: &str = "\
file:
  selectors:
    - name: executableChanges
      operation: [createExecutable, modifyExecutable]
    - name: etcChanges
      operation: [createFile, modifyFile, deleteFile]
      targetFilePath: [/etc/**]
  responses:
    - match: [executableChanges, etcChanges]
      actions: [alert]
";

/// The fenced ```d4ct block under the heading `## {heading}`.
fn example(markdown: &str, heading: &str) -> Option<String> {
    let mut under = false;
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        if let Some(text) = &mut block {
            if line.trim_start().starts_with("```") {
                return block;
            }
            text.push_str(line);
            text.push('\n');
        } else if let Some(title) = line.strip_prefix("## ") {
            under = title.trim() == heading;
        } else if under && line.trim_start().starts_with("```d4ct") {
            block = Some(String::new());
        }
    }
    None
}

#[test]
fn scenario_explanation_examples_behave() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenario-explanations");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.yaml"), EXAMPLE_POLICY).unwrap();
    let (_, lint) = d4cc::lint::lint_bytes("policy.yaml", EXAMPLE_POLICY.as_bytes().to_vec());
    assert!(lint.diagnostics.is_empty(), "the example policy is not clean: {:#?}", lint.diagnostics);

    let codes = [Code::ScenarioSyntax, Code::ScenarioState, Code::ScenarioFailed];
    assert_eq!(
        codes.to_vec(),
        Code::ALL.iter().copied().filter(|c| c.is_scenario()).collect::<Vec<_>>(),
        "the scenario codes changed: update this test"
    );
    for code in codes {
        let text = code.explanation();
        for (heading, good) in [("Bad", false), ("Good", true)] {
            let scenario = example(text, heading)
                .unwrap_or_else(|| panic!("{}: no ```d4ct block under `## {heading}`", code.id()));
            let path = dir.join(format!("{}-{}.d4ct", code.id(), heading.to_lowercase()));
            std::fs::write(&path, &scenario).unwrap();
            let outcome = run(&path, &format!("{} ({heading})", code.id()));
            if good {
                assert!(
                    outcome.diagnostics.is_empty(),
                    "{}: the good example fails:\n{scenario}\n{}",
                    code.id(),
                    rendered(&outcome)
                );
                assert!(outcome.steps > 0, "{}: the good example runs no step", code.id());
            } else {
                assert!(
                    outcome.diagnostics.iter().any(|d| d.code == code),
                    "{}: the bad example does not report it:\n{scenario}\n{}",
                    code.id(),
                    rendered(&outcome)
                );
            }
        }
    }
}

/// Steps the kernel could never decide are scenario problems (`D4C0035`),
/// each at its place: a rename or hard link across mounts (`EXDEV`), an
/// acting executable or volume that is not a canonical absolute path.
#[test]
fn impossible_steps_are_scenario_problems() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("impossible-steps");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.yaml"), EXAMPLE_POLICY).unwrap();
    let scenario = r#"policy "policy.yaml"
container web {
    image "nginx:1.25"
    volume "/data"
    volume "relative/dir"
    file "/data/a"
    file "/etc/b"
}
in web: rename "/data/a" to "/etc/a" => allow
in web: link "/etc/b" to "/data/b" => allow
in web as "bin/sh": fork => allow
in web as "/bin//sh": fork => allow
in web: rename "/data/a" to "/data/c" => allow
"#;
    std::fs::write(dir.join("impossible.d4ct"), scenario).unwrap();
    let outcome = run(&dir.join("impossible.d4ct"), "impossible.d4ct");
    let lines: Vec<(Code, usize)> = outcome
        .diagnostics
        .iter()
        .map(|d| (d.code, outcome.source.text[..d.primary.span.start].lines().count().max(1)))
        .collect();
    let state = Code::ScenarioState;
    assert_eq!(lines, vec![(state, 5), (state, 9), (state, 10), (state, 11), (state, 12)], "{}", rendered(&outcome));
    assert!(rendered(&outcome).contains("EXDEV"), "{}", rendered(&outcome));
    // The rename within one mount ran.
    assert_eq!(outcome.steps, 1);
}
