//! The `d4cc` command line as users and CI call it: exit statuses, file and
//! directory arguments, standard input, output formats, `fix` in place,
//! `explain` and `schema`.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CLEAN: &str = "process:\n  selectors:\n    - name: all\n      operation: [fork, exec]\n  responses:\n    - match: [all]\n      actions: [log]\n";
const WARNS: &str = "process:\n  selectors:\n    - name: all\n      operation: [fork, exec, exec]\n  responses:\n    - match: [all]\n      actions: [log]\n";
const ERRS: &str = "process:\n  selectors:\n    - name: all\n      operation: [fork, spawn]\n  responses:\n    - match: [all]\n      actions: [log]\n";
const LEGACY: &str = "# keep this comment\nfile:\n  selectors:\n    - name: ns   # and this one\n      operation: [createExecutable]\n      orchestratorNamespace: [default]\n  responses:\n    - match: [ns]\n      actions: [block]\n";

fn d4cc(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_d4cc"))
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn status(output: &Output) -> i32 {
    output.status.code().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A scratch directory under the target dir, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn clean_policy_prints_nothing_and_exits_0() {
    let dir = scratch("clean");
    let out = d4cc(&["lint", &write(&dir, "p.yaml", CLEAN)], None);
    assert_eq!((status(&out), stdout(&out).as_str()), (0, ""));
}

#[test]
fn exit_status_follows_errors_and_denied_warnings() {
    let dir = scratch("status");
    let warns = write(&dir, "w.yaml", WARNS);
    let errs = write(&dir, "e.yaml", ERRS);
    assert_eq!(status(&d4cc(&["lint", &warns], None)), 0);
    assert_eq!(status(&d4cc(&["lint", "--deny-warnings", &warns], None)), 1);
    assert_eq!(status(&d4cc(&["lint", &errs], None)), 1);
    assert_eq!(status(&d4cc(&["lint", &dir.join("missing.yaml").to_string_lossy()], None)), 2);
    assert_eq!(status(&d4cc(&["lint", "--format", "xml", &warns], None)), 2);
    assert_eq!(status(&d4cc(&["explain", "D4C9999"], None)), 2);
}

#[test]
fn human_output_has_no_colour_off_a_terminal_and_ends_with_a_summary() {
    let dir = scratch("human");
    let out = d4cc(&["lint", &write(&dir, "e.yaml", ERRS)], None);
    let text = stdout(&out);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("error[D4C0016]: unknown operation `spawn`"), "{text}");
    assert!(text.trim_end().ends_with("1 error in 1 file"), "{text}");
    let coloured = stdout(&d4cc(&["lint", "--color", "always", &dir.join("e.yaml").to_string_lossy()], None));
    assert!(coloured.contains('\u{1b}'));
}

#[test]
fn directories_are_walked_for_yaml_files_only() {
    let dir = scratch("walk");
    write(&dir, "a.yaml", ERRS);
    write(&dir, "sub/b.yml", ERRS);
    write(&dir, "sub/notes.txt", "not a policy");
    write(&dir, ".hidden/c.yaml", ERRS);
    let out = d4cc(&["lint", "--format", "json", &dir.to_string_lossy()], None);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let paths: Vec<&str> = json["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths[0].ends_with("a.yaml") && paths[1].ends_with("b.yml"), "{paths:?}");
    assert_eq!(json["summary"]["errors"], 2);
    assert_eq!(status(&out), 1);
}

#[test]
fn standard_input_is_linted_as_stdin() {
    let out = d4cc(&["lint", "--format", "json", "-"], Some(ERRS));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["files"][0]["path"], "<stdin>");
    assert_eq!(json["files"][0]["diagnostics"][0]["code"], "D4C0016");
    assert_eq!(json["files"][0]["diagnostics"][0]["line"], 4);
}

#[test]
fn sarif_output_names_every_rule_and_the_result_location() {
    let dir = scratch("sarif");
    let out = d4cc(&["lint", "--format", "sarif", &write(&dir, "e.yaml", ERRS)], None);
    let sarif: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), d4cc::codes::Code::ALL.len());
    assert_eq!(run["results"][0]["ruleId"], "D4C0016");
    assert_eq!(run["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"], 4);
}

#[test]
fn fix_rewrites_in_place_keeping_comments_and_then_lints_clean() {
    let dir = scratch("fix");
    let path = write(&dir, "legacy.yaml", LEGACY);
    let out = d4cc(&["fix", &path], None);
    let fixed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        fixed,
        LEGACY.replace("orchestratorNamespace", "kubernetesNamespace").replace("[block]", "[alert, block]")
    );
    assert_eq!((status(&out), stdout(&out).as_str()), (0, ""));
    // Idempotent: a second run changes nothing.
    assert_eq!(status(&d4cc(&["lint", "--fix", &path], None)), 0);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), fixed);
}

#[test]
fn explain_prints_the_explanation_and_lists_codes() {
    let out = d4cc(&["explain", "duplicate-key"], None);
    assert_eq!(status(&out), 0);
    assert!(stdout(&out).starts_with("# D4C0007 `duplicate-key`"));
    let list = stdout(&d4cc(&["explain"], None));
    assert_eq!(list.lines().count(), d4cc::codes::Code::ALL.len());
}

#[test]
fn schema_is_json() {
    let out = d4cc(&["schema"], None);
    let schema: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(schema["$defs"].is_object());
}

/// Regression (issue 14, fault 6): `d4cc lint DIR` and `test DIR` hung on
/// a FIFO named `*.yaml` / `*.d4ct`, and `inspect` / `verify` read
/// `/dev/zero` to 8–11 GB. Each is refused at once, naming what it is.
#[test]
fn a_fifo_or_dev_zero_given_as_input_is_refused_not_read() {
    let dir = scratch("fifo-inputs");
    write(&dir, "p.yaml", CLEAN);
    let fifo = dir.join("q.yaml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = d4cc(&["lint", &dir.to_string_lossy()], None);
    assert_eq!(status(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("q.yaml`: not a regular file (a FIFO)"), "{}", stderr(&out));
    let scenario = dir.join("s.d4ct");
    assert!(Command::new("mkfifo").arg(&scenario).status().unwrap().success());
    let out = d4cc(&["test", &scenario.to_string_lossy()], None);
    assert!(stderr(&out).contains("not a regular file (a FIFO)"), "{}", stderr(&out));
    assert_ne!(status(&out), 0);
    for args in [["inspect", "/dev/zero"].as_slice(), &["diff", "/dev/zero", "/dev/zero"]] {
        let out = d4cc(args, None);
        assert_eq!(status(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("not a regular file (a character device)"), "{}", stderr(&out));
    }
}

// ---- issue 14 ----

const ANCHORED: &str = "process:\n  selectors:\n    - name: a\n      operation: [exec]\n    - name: b\n      operation: [fork]\n  responses:\n    - match: [a]\n      actions: [alert, &b block]\n    - match: [b]\n      actions: [*b]\n";

/// Regression (issue 14, fault 11): `fix` replaced `&b block` with
/// `alert, block`, deleting the anchor that `*b` uses, and wrote a file
/// that did not parse; `D4C0028` pointed at the first response, which
/// alerts, instead of the one that blocks through `*b`.
#[test]
fn fix_keeps_yaml_anchors() {
    let dir = scratch("fix-anchors");
    let path = write(&dir, "anchored.yaml", ANCHORED);
    let lint = d4cc(&["lint", "--format", "json", &path], None);
    let report: serde_json::Value = serde_json::from_str(&stdout(&lint)).unwrap();
    let diagnostics = &report["files"][0]["diagnostics"];
    assert_eq!(diagnostics.as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!((diagnostics[0]["code"].as_str(), diagnostics[0]["line"].as_u64()), (Some("D4C0028"), Some(11)));
    let out = d4cc(&["fix", &path], None);
    let fixed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(fixed, ANCHORED.replace("[*b]", "[alert, *b]"), "{}", stderr(&out));
    assert_eq!((status(&out), stdout(&out).as_str()), (0, ""), "{}", stderr(&out));
}

/// Issue 14, fault 11: a fix that would delete an anchor an alias uses is
/// skipped, and said so; the file is left parseable.
#[test]
fn fix_skips_a_fix_that_would_remove_an_aliased_anchor() {
    let text = "process:\n  selectors:\n    - name: a\n      operation: [exec]\n      processName: [&n 1234]\n    - name: b\n      operation: [fork]\n      processName: [*n]\n  responses:\n    - match: [a, b]\n      actions: [alert]\n";
    let dir = scratch("fix-aliased-anchor");
    let path = write(&dir, "anchored.yaml", text);
    let out = d4cc(&["fix", &path], None);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_eq!(status(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains(
            "not fixed at 5:21: quote `1234`: it would remove the anchor `&n`, which the alias `*n` on line 8 uses"
        ),
        "{err}"
    );
    assert!(err.contains("not fixed at 8:21: quote `1234`: it would replace the alias `*n`"), "{err}");
}

/// Regression (issue 14, fault 14): `lint`, `fix` and `test` of a
/// directory without a policy (or scenario) exited 0 and said nothing.
#[test]
fn lint_empty_directory_is_an_error() {
    let dir = scratch("empty-directory");
    let shown = dir.display().to_string();
    for command in ["lint", "fix"] {
        let out = d4cc(&[command, &shown], None);
        assert_eq!(status(&out), 2, "{command}");
        assert!(
            stderr(&out).contains(&format!("no policy files (*.yaml, *.yml) found in `{shown}`")),
            "{}",
            stderr(&out)
        );
    }
    let out = d4cc(&["test", &shown], None);
    assert_eq!(status(&out), 2);
    assert!(stderr(&out).contains(&format!("no scenario files (*.d4ct) found in `{shown}`")), "{}", stderr(&out));
}

/// Regression (issue 14, fault 14): `compile --name ''` wrote an artifact
/// without a name; a name with an escape sequence reached every terminal
/// that showed it.
#[test]
fn empty_name_is_refused() {
    let dir = scratch("empty-name");
    let policy = write(&dir, "policy.yaml", CLEAN);
    let artifact = dir.join("policy.d4c").display().to_string();
    for (name, problem) in [
        ("", "`--name` is empty"),
        ("  \t", "`--name` `  \\t` is only white space"),
        ("web\u{1b}[2J\r", "`--name` `web\\u{1b}[2J\\r` holds a control character"),
    ] {
        let out = d4cc(&["compile", &policy, "--name", name, "-o", &artifact], None);
        assert_eq!(status(&out), 2, "{name:?}");
        assert!(stderr(&out).contains(problem), "{name:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains(['\r', '\u{1b}']), "{:?}", stderr(&out));
        assert!(!Path::new(&artifact).exists(), "{name:?}");
    }
    assert_eq!(status(&d4cc(&["compile", &policy, "--name", "web", "-o", &artifact], None)), 0);
}

/// Regression (issue 14, fault 14): a diagnostic echoed a 10 MB name in
/// full.
#[test]
fn long_user_text_is_truncated_in_messages() {
    let name = "a".repeat(10 * 1024 * 1024);
    let text = format!("process:\n  selectors:\n    - name: {name}\n      operation: [exec]\n  responses:\n    - match: [b]\n      actions: [alert]\n");
    let out = d4cc(&["lint", "--format", "json", "-"], Some(&text));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let messages: Vec<&str> =
        report["files"][0]["diagnostics"].as_array().unwrap().iter().filter_map(|d| d["message"].as_str()).collect();
    let unused = messages.iter().find(|m| m.contains("is not used")).unwrap();
    assert_eq!(*unused, format!("the selector `{}…` (10485760 bytes) is not used by any response", "a".repeat(80)));
    assert!(messages.iter().all(|m| m.len() < 300), "{messages:?}");
}

/// Regression (issue 14, fault 12): a path `"/x\r/etc/passwd"` linted
/// clean, and reads as `/etc/passwd` on a terminal.
#[test]
fn a_control_character_in_a_path_is_a_lint_error() {
    let text = "file:\n  selectors:\n    - name: passwd\n      operation: [modifyFile]\n      targetFilePath: [\"/x\\r/etc/passwd\"]\n  responses:\n    - match: [passwd]\n      actions: [alert]\n";
    let out = d4cc(&["lint", "--color", "never", "-"], Some(text));
    assert_eq!(status(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out)
            .contains("error[D4C0042]: an item of `targetFilePath` holds a carriage return: `/x\\r/etc/passwd`"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains('\r'), "{:?}", stdout(&out));
}
