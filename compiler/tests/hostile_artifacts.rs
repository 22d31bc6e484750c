//! Hostile artifacts: well-formed files with valid digests (re-sealed after
//! the edit, so that the crafted table is the only fault) whose tables lie.
//! Every reader refuses them plainly, in bounded memory, never aborting:
//! the table reader, `d4cc inspect`, `verify` and `sign`.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::Path;
use std::process::{Command, Output};

use d4c_artifact::eval::{sections, Tables};
use d4c_artifact::tables::kind;
use d4c_artifact::{aligned_copy, Artifact, ArtifactWriter, SectionFlags, SectionKind, WriterMeta};

const POLICY: &str = "\
file:
  selectors:
    - name: etc
      operation: [modifyFile]
      targetFilePath: [/etc/**, /usr/local/bin/tool]
  responses:
    - match: [etc]
      actions: [alert]
";

/// A compiled artifact of [`POLICY`] whose component-id sections are
/// replaced by `edit` of the real ones, sealed with fresh digests.
fn with_component_ids(edit: impl Fn(&mut Vec<u32>)) -> Vec<u8> {
    let (_, lint) = d4cc::lint::lint_bytes("hostile.yaml", POLICY.as_bytes().to_vec());
    let checked = lint.checked.expect("the policy lints");
    let options = d4cc::compile::CompileOptions { policy_name: "hostile".into(), revision: 3, created_unix: None };
    let bytes = aligned_copy(&d4cc::compile::compile(POLICY.as_bytes(), &checked, &options).unwrap());
    let artifact = Artifact::parse(&bytes).unwrap();
    let tables = Tables::read(&artifact).unwrap();
    let mut writer = ArtifactWriter::new(WriterMeta {
        policy_name: artifact.policy_name().to_string(),
        compiler_version: "d4cc hostile-test".into(),
        revision: artifact.header().revision,
        created_unix: None,
        source_digest: d4c_artifact::sha256(POLICY.as_bytes()),
    });
    let mut edited = false;
    for (section, record_size, mut section_bytes) in sections(&tables).unwrap() {
        if section == kind::COMPONENT_SHORT_VALUES && !section_bytes.is_empty() {
            let mut ids: Vec<u32> =
                section_bytes.chunks_exact(4).map(|c| u32::from_ne_bytes(c.try_into().unwrap())).collect();
            edit(&mut ids);
            section_bytes = ids.iter().flat_map(|id| id.to_ne_bytes()).collect();
            edited = true;
        }
        writer.add_section(SectionKind(section), SectionFlags::NONE, record_size, section_bytes).unwrap();
    }
    assert!(edited, "the policy has no short component to edit");
    writer.finish().unwrap()
}

fn read_tables(bytes: &[u8]) -> Result<Tables, String> {
    let aligned = aligned_copy(bytes);
    let artifact = Artifact::parse(&aligned).map_err(|e| format!("parse: {e}"))?;
    Tables::read(&artifact).map_err(|e| e.to_string())
}

fn d4cc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d4cc")).args(args).output().unwrap()
}

/// Regression (issue 14, fault 1): a component id of 0xFFFFFFFF made the
/// table reader resize a vector to that id before checking it, and every
/// reader aborted (exit 134); 200,000,000 cost 4.7 GB before it was refused.
#[test]
fn a_hostile_component_id_is_refused_before_anything_is_allocated_from_it() {
    // The real tables read.
    assert!(read_tables(&with_component_ids(|_| {})).is_ok());
    for hostile in [u32::MAX, 200_000_000] {
        let bytes = with_component_ids(|ids| ids[0] = hostile);
        let error = read_tables(&bytes).map(|_| ()).unwrap_err();
        assert!(error.contains(&format!("component id {hostile} is past the")), "{error}");
    }
    // An id given twice (so another is missing) is refused too.
    let bytes = with_component_ids(|ids| {
        if ids.len() > 1 {
            ids[1] = ids[0];
        }
    });
    assert!(read_tables(&bytes).is_err());
}

#[test]
fn d4cc_refuses_a_hostile_artifact_in_inspect_verify_and_sign() {
    let dir = std::env::temp_dir().join(format!("d4cc-hostile-artifacts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name);
    let text = |p: &Path| p.to_str().unwrap().to_string();
    let out = d4cc(&["keygen", "--secret", &text(&path("key.pem")), "--public", &text(&path("key.pub.pem"))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = with_component_ids(|ids| ids[0] = u32::MAX);
    std::fs::write(path("hostile.d4c"), &bytes).unwrap();
    let key = d4c_artifact::keys::read_secret_key(&path("key.pem")).unwrap();
    std::fs::write(path("signed.d4c"), d4c_artifact::sign(&bytes, &key).unwrap()).unwrap();

    let runs = [
        d4cc(&["inspect", &text(&path("hostile.d4c"))]),
        d4cc(&["verify", &text(&path("signed.d4c")), "--key", &text(&path("key.pub.pem"))]),
        d4cc(&["sign", &text(&path("hostile.d4c")), "--key", &text(&path("key.pem"))]),
    ];
    for out in runs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("component id 4294967295 is past the"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
