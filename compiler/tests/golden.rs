//! Golden artifacts: `testdata/golden/NAME.d4c` is what `d4cc compile`
//! makes of a few policies (policy name = the file's stem, revision 1, no
//! `SOURCE_DATE_EPOCH`), and `NAME.inspect.json` is `d4cc inspect --format
//! json` of it. Compilation is deterministic, so any change to the bytes (a
//! format change, a lowering change, a new compiler version) shows up here
//! as a reviewed diff of these files.
//!
//! To accept a change: `D4C_UPDATE_GOLDEN=1 cargo test -p d4cc --test
//! golden`, then review it with `git diff --stat testdata/golden` and
//! `d4cc diff OLD NEW` on each changed artifact.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4c_artifact::eval::Tables;
use d4c_artifact::Artifact;
use d4cc::compile::{compile, CompileOptions};
use d4cc::lint::lint_bytes;
use std::path::{Path, PathBuf};

/// The policies with golden artifacts, relative to the workspace root.
const POLICIES: [&str; 4] = [
    "deploy/policies/default.yaml",
    "deploy/policies/drift-prevention.yaml",
    "testdata/policies/valid/seed-block-example.yaml",
    "testdata/scenarios/policies/every-condition.yaml",
];

const UPDATE_VAR: &str = "D4C_UPDATE_GOLDEN";

/// Whether this run rewrites the golden files. The other tests then skip:
/// they would read files being rewritten.
fn updating() -> bool {
    std::env::var_os(UPDATE_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden_dir() -> PathBuf {
    root().join("testdata/golden")
}

fn stem(policy: &str) -> String {
    Path::new(policy).file_stem().unwrap().to_string_lossy().into_owned()
}

/// What `d4cc compile POLICY -o STEM.d4c` writes.
fn compile_policy(policy: &str) -> Vec<u8> {
    let bytes = std::fs::read(root().join(policy)).unwrap();
    let (_, lint) = lint_bytes(policy, bytes.clone());
    assert!(lint.diagnostics.is_empty(), "{policy} is not clean: {:#?}", lint.diagnostics);
    let checked = lint.checked.unwrap_or_else(|| panic!("{policy}: no checked policy"));
    let options = CompileOptions { policy_name: stem(policy), revision: 1, created_unix: None };
    compile(&bytes, &checked, &options).unwrap_or_else(|e| panic!("{policy} does not compile: {e}"))
}

/// Parses an artifact and reads its tables, as the runtime does.
fn parse(name: &str, bytes: &[u8], check: impl FnOnce(&Artifact<'_>, &Tables) -> String) -> String {
    let aligned = d4c_artifact::aligned_copy(bytes);
    let artifact = Artifact::parse(&aligned).unwrap_or_else(|e| panic!("{name}: not a valid artifact: {e}"));
    let tables = Tables::read(&artifact).unwrap_or_else(|e| panic!("{name}: unusable tables: {e}"));
    check(&artifact, &tables)
}

/// What `d4cc inspect --format json` prints.
fn inspect_json(name: &str, bytes: &[u8]) -> String {
    parse(name, bytes, |artifact, tables| format!("{:#}\n", d4cc::inspect::report(artifact, tables)))
}

fn how_to_update(name: &str, fresh: &Path) -> String {
    format!(
        "If the change is intended, regenerate and review the golden files:\n\
         \x20   {UPDATE_VAR}=1 cargo test -p d4cc --test golden\n\
         \x20   git diff --stat testdata/golden\n\
         \x20   git show HEAD:testdata/golden/{name}.d4c > /tmp/{name}.old.d4c\n\
         \x20   d4cc diff /tmp/{name}.old.d4c testdata/golden/{name}.d4c\n\
         and commit them with the change that explains them. The new artifact is also at {}.",
        fresh.display()
    )
}

#[test]
fn golden_artifacts_are_what_the_compiler_makes() {
    let update = updating();
    let fresh_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("golden");
    std::fs::create_dir_all(&fresh_dir).unwrap();
    let mut problems = Vec::new();
    for policy in POLICIES {
        let name = stem(policy);
        let artifact = compile_policy(policy);
        assert_eq!(artifact, compile_policy(policy), "{policy}: two compilations differ");
        let json = inspect_json(&name, &artifact);
        let artifact_path = golden_dir().join(format!("{name}.d4c"));
        let json_path = golden_dir().join(format!("{name}.inspect.json"));
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&artifact_path, &artifact).unwrap();
            std::fs::write(&json_path, &json).unwrap();
            continue;
        }
        let fresh = fresh_dir.join(format!("{name}.d4c"));
        std::fs::write(&fresh, &artifact).unwrap();
        match std::fs::read(&artifact_path) {
            Ok(golden) if golden == artifact => {}
            Ok(golden) => problems.push(format!(
                "testdata/golden/{name}.d4c ({} bytes) differs from what {policy} compiles to now ({} bytes).\n{}",
                golden.len(),
                artifact.len(),
                how_to_update(&name, &fresh)
            )),
            Err(e) => problems
                .push(format!("testdata/golden/{name}.d4c cannot be read ({e}).\n{}", how_to_update(&name, &fresh))),
        }
        match std::fs::read_to_string(&json_path) {
            Ok(golden) if golden == json => {}
            Ok(_) => problems.push(format!(
                "testdata/golden/{name}.inspect.json differs from `d4cc inspect --format json` of the new artifact.\n{}",
                how_to_update(&name, &fresh)
            )),
            Err(e) => problems.push(format!(
                "testdata/golden/{name}.inspect.json cannot be read ({e}).\n{}",
                how_to_update(&name, &fresh)
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn golden_artifacts_parse_and_say_what_they_are() {
    if updating() {
        return;
    }
    for policy in POLICIES {
        let name = stem(policy);
        let path = golden_dir().join(format!("{name}.d4c"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes.len() <= 16 * 1024, "{}: {} bytes; keep golden artifacts small", path.display(), bytes.len());
        parse(&name, &bytes, |artifact, tables| {
            assert_eq!(artifact.policy_name(), name);
            assert_eq!(artifact.header().revision, 1);
            assert_eq!(artifact.header().created_unix, 0, "{name}: golden artifacts record no time");
            assert!(artifact.signatures().is_empty(), "{name}: golden artifacts are unsigned");
            let selectors = tables.meta.file.selectors.len() + tables.meta.process.selectors.len();
            assert!(selectors > 0, "{name}: no selectors");
            String::new()
        });
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(golden_dir().join(format!("{name}.inspect.json"))).unwrap())
                .unwrap();
        assert_eq!(json["header"]["policy_name"], name.as_str());
        assert_eq!(json["header"]["bytes"], bytes.len());
    }
}

#[test]
fn golden_directory_holds_only_these() {
    if updating() {
        return;
    }
    let mut expected: Vec<String> = POLICIES
        .iter()
        .flat_map(|p| {
            let name = stem(p);
            [format!("{name}.d4c"), format!("{name}.inspect.json")]
        })
        .collect();
    expected.sort();
    let mut actual: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    actual.sort();
    assert_eq!(actual, expected, "testdata/golden holds files no policy in tests/golden.rs makes (or lacks some)");
}
