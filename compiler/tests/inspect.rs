//! `d4cc inspect` and the artifact commands around it.
//!
//! - Snapshots of the human and JSON reports of two compiled policies (the
//!   artifact path shown is `policy.d4c`, so snapshots do not depend on
//!   temporary paths).
//! - The command line: `compile` then `inspect`; `inspect` of a truncated or
//!   altered artifact; `keygen`, `sign` and `verify`; `compile` of a policy
//!   with errors.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4c_artifact::eval::Tables;
use d4c_artifact::Artifact;
use d4cc::compile::{compile, CompileOptions};
use d4cc::lint::lint_bytes;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiles `policy` (relative to the workspace root) as `d4cc compile`
/// does by default: named after the file's stem, revision 1, no time.
fn compile_policy(policy: &str) -> Vec<u8> {
    let bytes = std::fs::read(root().join(policy)).unwrap();
    let (_, lint) = lint_bytes(policy, bytes.clone());
    assert!(!lint.has_errors(), "{policy}: {:#?}", lint.diagnostics);
    let name = Path::new(policy).file_stem().unwrap().to_string_lossy().into_owned();
    let options = CompileOptions { policy_name: name, revision: 1, created_unix: None };
    compile(&bytes, &lint.checked.unwrap(), &options).unwrap()
}

/// The human and JSON reports of an artifact, as `d4cc inspect` makes them
/// for an artifact at `path`.
fn reports(path: &str, bytes: &[u8]) -> (String, serde_json::Value) {
    let aligned = d4c_artifact::aligned_copy(bytes);
    let artifact = Artifact::parse(&aligned).unwrap();
    let tables = Tables::read(&artifact).unwrap();
    (d4cc::inspect::render_human(path, &artifact, &tables), d4cc::inspect::report(&artifact, &tables))
}

#[test]
fn inspect_drift_prevention() {
    let (human, json) = reports("policy.d4c", &compile_policy("deploy/policies/drift-prevention.yaml"));
    insta::assert_snapshot!("drift_prevention_human", human);
    insta::assert_json_snapshot!("drift_prevention_json", json);
}

#[test]
fn inspect_every_condition() {
    let (human, json) = reports("policy.d4c", &compile_policy("testdata/scenarios/policies/every-condition.yaml"));
    insta::assert_snapshot!("every_condition_human", human);
    insta::assert_json_snapshot!("every_condition_json", json);
}

// ---- the command line ----

fn d4cc(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d4cc")).args(args).env_remove("SOURCE_DATE_EPOCH").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles the drift-prevention policy with the CLI into `dir`.
fn cli_compile(dir: &Path) -> PathBuf {
    let out = dir.join("policy.d4c");
    let policy = root().join("deploy/policies/drift-prevention.yaml");
    let output = d4cc(&[&"compile", &policy, &"-o", &out, &"--name", &"drift-prevention"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    out
}

/// The offset of a byte inside the data of the artifact's first non-empty
/// section.
fn offset_in_a_section(bytes: &[u8]) -> usize {
    let aligned = d4c_artifact::aligned_copy(bytes);
    let artifact = Artifact::parse(&aligned).unwrap();
    let section = artifact.sections().find(|s| s.entry().length > 0).unwrap();
    usize::try_from(section.entry().offset).unwrap() + 1
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes[at] ^= 0x01;
    bytes
}

#[test]
fn cli_compile_then_inspect() {
    let dir = scratch("round-trip");
    let out = cli_compile(&dir);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes, compile_policy("deploy/policies/drift-prevention.yaml"), "the CLI and the library differ");

    let output = d4cc(&[&"inspect", &out]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let (human, json) = reports(&out.display().to_string(), &bytes);
    assert_eq!(stdout(&output), human);
    assert!(stdout(&output).contains("policy      drift-prevention (revision 1)"), "{}", stdout(&output));

    let output = d4cc(&[&"inspect", &out, &"--format", &"json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(printed, json);
    assert_eq!(printed["header"]["bytes"], bytes.len());

    // Without `-o` and `--name`: next to the policy, named after its stem,
    // and the same tables.
    let policy = dir.join("drift.yaml");
    std::fs::copy(root().join("deploy/policies/drift-prevention.yaml"), &policy).unwrap();
    let output = d4cc(&[&"compile", &policy]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).is_empty(), "compile prints nothing on standard output: {}", stdout(&output));
    let output = d4cc(&[&"inspect", &dir.join("drift.d4c"), &"--format", &"json"]);
    let second: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(second["header"]["policy_name"], "drift");
    assert_eq!(second["tables"], json["tables"]);
    assert_eq!(second["sections"], json["sections"], "the policy name is in the header, not in a section");
}

#[test]
fn cli_inspect_refuses_damaged_artifacts() {
    let dir = scratch("damaged");
    let bytes = std::fs::read(cli_compile(&dir)).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated-header.d4c", bytes[..100].to_vec(), "truncated"),
        ("truncated.d4c", bytes[..bytes.len() / 2].to_vec(), "truncated"),
        ("empty.d4c", Vec::new(), "truncated"),
        ("flipped.d4c", flip(&bytes, offset_in_a_section(&bytes)), "digest mismatch"),
    ];
    for (name, damaged, problem) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &damaged).unwrap();
        for format in ["human", "json"] {
            let output = d4cc(&[&"inspect", &path, &"--format", &format]);
            assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr(&output));
            assert!(stdout(&output).is_empty(), "{name}: {}", stdout(&output));
            let message = stderr(&output);
            assert!(message.contains(name), "{name}: the message does not name the file: {message}");
            assert!(message.contains(problem), "{name}: the message does not say `{problem}`: {message}");
        }
    }
}

#[test]
fn cli_sign_and_verify() {
    let dir = scratch("sign");
    let artifact = cli_compile(&dir);
    for key in ["ci", "other"] {
        let output = d4cc(&[
            &"keygen",
            &"--secret",
            &dir.join(format!("{key}.key")),
            &"--public",
            &dir.join(format!("{key}.pub")),
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
    let signed = dir.join("signed.d4c");
    let output = d4cc(&[&"sign", &artifact, &"--key", &dir.join("ci.key"), &"-o", &signed]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let output = d4cc(&[&"verify", &signed, &"--key", &dir.join("ci.pub")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("ok: "), "{}", stdout(&output));

    // Another key's signature is not there.
    let output = d4cc(&[&"verify", &signed, &"--key", &dir.join("other.pub")]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stderr(&output).contains("no signature"), "{}", stderr(&output));
    // Neither is any in the unsigned artifact.
    let output = d4cc(&[&"verify", &artifact, &"--key", &dir.join("ci.pub")]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));

    // The signed artifact still inspects, and shows its signature.
    let output = d4cc(&[&"inspect", &signed]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("signatures  key "), "{}", stdout(&output));

    // One byte changed anywhere: in a section, or in the signature itself.
    let bytes = std::fs::read(&signed).unwrap();
    for (name, at) in [("section", offset_in_a_section(&bytes)), ("signature", bytes.len() - 3)] {
        let tampered = dir.join(format!("tampered-{name}.d4c"));
        std::fs::write(&tampered, flip(&bytes, at)).unwrap();
        let output = d4cc(&[&"verify", &tampered, &"--key", &dir.join("ci.pub")]);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stdout(&output));
        assert!(stdout(&output).is_empty(), "{name}: {}", stdout(&output));
        assert!(stderr(&output).contains("altered"), "{name}: {}", stderr(&output));
    }
}

#[test]
fn cli_compile_refuses_a_policy_with_errors() {
    let dir = scratch("errors");
    let policy = dir.join("bad.yaml");
    std::fs::write(
        &policy,
        "process:\n  selectors:\n    - name: all\n      operation: [fork, spawn]\n  responses:\n    - match: [all]\n      actions: [log]\n",
    )
    .unwrap();
    let out = dir.join("out.d4c");
    let output = d4cc(&[&"compile", &policy, &"-o", &out, &"--color", &"never"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!out.exists(), "an artifact was written for a policy with errors");
    assert!(!dir.join("bad.d4c").exists());
    assert!(stdout(&output).is_empty(), "diagnostics go to standard error: {}", stdout(&output));
    let message = stderr(&output);
    assert!(message.contains("error[D4C0016]"), "{message}");
    assert!(message.contains("spawn"), "{message}");
    assert!(message.contains("nothing was written"), "{message}");

    // Without `-o` either.
    let output = d4cc(&[&"compile", &policy]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!dir.join("bad.d4c").exists(), "an artifact was written next to a policy with errors");
}

/// A policy whose path and artifact name hold control characters, compiled
/// as a hostile producer would (the lint's `D4C0042` errors ignored).
fn hostile_artifact() -> Vec<u8> {
    let policy = "file:\n  selectors:\n    - name: passwd\n      operation: [modifyFile]\n      targetFilePath: [\"/x\\r/etc/passwd\"]\n  responses:\n    - match: [passwd]\n      actions: [alert]\n";
    let (_, lint) = lint_bytes("hostile.yaml", policy.as_bytes().to_vec());
    let options = CompileOptions { policy_name: "web\u{1b}[2J\rprod".into(), revision: 1, created_unix: None };
    compile(policy.as_bytes(), &lint.checked.unwrap(), &options).unwrap()
}

/// Regression (issue 14, fault 12): a path `"/x\r/etc/passwd"` was printed
/// with its carriage return, so that a reviewer read `/etc/passwd`; an
/// escape sequence in the policy name reached the terminal.
#[test]
fn control_characters_are_escaped_in_inspect() {
    let (human, _) = reports("policy.d4c", &hostile_artifact());
    assert!(!human.contains(['\r', '\u{1b}']), "{human:?}");
    assert!(human.contains("/x\\r/etc/passwd"), "{human}");
    assert!(human.contains("web\\u{1b}[2J\\rprod"), "{human}");
    // The command line too, and `verify`'s line.
    let dir = scratch("control-characters");
    let path = dir.join("hostile.d4c");
    std::fs::write(&path, hostile_artifact()).unwrap();
    let out = d4cc(&[&"inspect", &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(['\r', '\u{1b}']), "{:?}", stdout(&out));
    assert!(stdout(&out).contains("/x\\r/etc/passwd"), "{}", stdout(&out));
}
