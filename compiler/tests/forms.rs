//! Policies where users hold them: an Elastic Agent standalone
//! configuration and a Fleet package policy exported as JSON
//! (`testdata/forms/`). Diagnostics point into the file as written, inside
//! the JSON string too; `fix` edits the file in place; `compile` records the
//! package policy's id and revision; `diff` and `test` read both forms.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4cc::codes::Code;
use d4cc::lint::lint_bytes;
use d4cc::locate::Form;
use d4cc::render::{human, line_col, sarif, FileReport};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn forms() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/forms")
}

fn d4cc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d4cc")).args(args).env_remove("SOURCE_DATE_EPOCH").output().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("forms").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_typo_inside_a_fleet_configuration_is_reported_at_its_own_line_and_column() {
    let bytes = std::fs::read(forms().join("fleet-typo.json")).unwrap();
    let (source, output) = lint_bytes("fleet-typo.json", bytes);
    assert_eq!(output.form, Form::FleetPackagePolicy);
    let typo = output.diagnostics.iter().find(|d| d.code == Code::InvalidOperation).unwrap();
    assert_eq!(&source.text[typo.primary.span.range()], "modifyExecuteable");
    assert_eq!(line_col(&source.text, typo.primary.span.start), (27, 104));
    let report = FileReport { source: &source, diagnostics: &output.diagnostics };
    insta::assert_snapshot!("fleet_typo_human", human::render(&report, false));
    insta::assert_json_snapshot!("fleet_typo_sarif", sarif::render(&[report], "test"));
}

#[test]
fn spans_cross_json_escapes_exactly() {
    // `\u00e9`, `\"` and `\\` before the typo, each decoded character
    // written as several bytes. (Surrogate pairs, `\ud83d\ude00`, are not
    // YAML: the parser refuses them, at their place in the file.)
    let policy = "# caf\u{e9} \"quoted\" back\\slash\nprocess:\n  selectors:\n    - name: all\n      operation: [fork, exek]\n  responses:\n    - match: [all]\n      actions: [log]\n";
    let escaped: String = serde_json::to_string(policy)
        .unwrap()
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                c.encode_utf16(&mut [0; 2]).iter().map(|u| format!("\\u{u:04x}")).collect()
            }
        })
        .collect();
    let text = format!(
        "{{\"package\": {{\"name\": \"cloud_defend\"}}, \"id\": \"p1\", \"revision\": 4, \"inputs\": [{{\"type\": \"cloud_defend/control\", \"vars\": {{\"configuration\": {{\"value\": {escaped}}}}}}}]}}\n"
    );
    let (source, output) = lint_bytes("escapes.json", text.into_bytes());
    let typo = output.diagnostics.iter().find(|d| d.code == Code::InvalidOperation);
    let typo = typo.unwrap_or_else(|| panic!("{}\n{:#?}", source.text, output.diagnostics));
    assert_eq!(&source.text[typo.primary.span.range()], "exek", "{:#?}", output.diagnostics);
    assert_eq!(output.metadata.id.as_ref().map(|i| i.value.as_str()), Some("p1"));
    assert_eq!(output.metadata.revision.as_ref().map(|r| r.value), Some(4));
}

/// Reads an artifact's policy name and revision.
fn header(path: &Path) -> (String, u64) {
    let bytes = d4c_artifact::aligned_copy(&std::fs::read(path).unwrap());
    let artifact = d4c_artifact::Artifact::parse(&bytes).unwrap();
    (artifact.policy_name().to_string(), artifact.header().revision)
}

#[test]
fn both_forms_compile_with_their_package_policy_id_and_revision() {
    let dir = scratch("compile");
    for (file, id, revision) in [
        ("agent-standalone.yml", "4c9cbba0-c812-11ed-a8dd-91ec403e4f03", 3),
        ("fleet-export.json", "c6d16e42-c32d-4dce-8a88-113cfe276ad1", 9),
    ] {
        let out = dir.join(format!("{file}.d4c"));
        let output = d4cc(&["compile", forms().join(file).to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(header(&out), (id.to_string(), revision), "{file}");
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(said.contains("the policy of") && said.contains(id), "{said}");
        // `--name` and `--revision` still override.
        let output = d4cc(&[
            "compile",
            forms().join(file).to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--name",
            "web",
            "--revision",
            "12",
        ]);
        assert!(output.status.success());
        assert_eq!(header(&out), ("web".to_string(), 12));
    }
    let output = d4cc(&[
        "compile",
        forms().join("fleet-export.json").to_str().unwrap(),
        "-o",
        "/dev/null",
        "--revision",
        "40000",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(said.contains("revision 40000 does not fit `cloud_defend.package_policy_revision`"), "{said}");
}

#[test]
fn fix_round_trips_both_forms() {
    let dir = scratch("fix");
    for file in ["agent-fixable.yml", "fleet-typo.json"] {
        let path = dir.join(file);
        std::fs::copy(forms().join(file), &path).unwrap();
        let _ = d4cc(&["fix", path.to_str().unwrap()]);
        let fixed = std::fs::read_to_string(&path).unwrap();
        let (_, output) = lint_bytes(file, fixed.clone().into_bytes());
        assert!(output.diagnostics.iter().all(|d| d.fix.is_none()), "{file}: fixes left: {:#?}", output.diagnostics);
        if file.ends_with(".json") {
            let value: serde_json::Value = serde_json::from_str(&fixed).unwrap();
            let policy = value["item"]["inputs"][0]["vars"]["configuration"]["value"].as_str().unwrap().to_string();
            insta::assert_snapshot!("fix_fleet_configuration", policy);
            // Only the string changed.
            let original: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(forms().join(file)).unwrap()).unwrap();
            let mut rest = value.clone();
            rest["item"]["inputs"][0]["vars"]["configuration"]["value"] =
                original["item"]["inputs"][0]["vars"]["configuration"]["value"].clone();
            assert_eq!(rest, original);
        } else {
            insta::assert_snapshot!("fix_agent_configuration", fixed);
        }
    }
}

#[test]
fn diff_and_test_read_both_forms() {
    let output = d4cc(&[
        "diff",
        forms().join("agent-standalone.yml").to_str().unwrap(),
        forms().join("fleet-export.json").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(said.contains("4c9cbba0-c812-11ed-a8dd-91ec403e4f03") && said.contains("c6d16e42"), "{said}");
    let outcome = d4cc::scenario::test_file(&forms().join("agent-standalone.d4ct"), "agent-standalone.d4ct").unwrap();
    assert!(outcome.diagnostics.is_empty() && outcome.steps > 0, "{:#?}", outcome.diagnostics);
}
