//! `d4cc inspect`: what an artifact holds, for people and for scripts.
//!
//! Input: a parsed artifact and its tables. Output: a JSON document with the
//! header, the sections, the limits used and every table, and a human
//! rendering of the same (tables summarised by size, selectors and
//! responses in full).

use crate::limits::{MAX_PATH_PATTERNS, MAX_RESPONSES_PER_TYPE, MAX_SELECTORS_PER_TYPE};
use crate::lower::{MAX_CLASS_ENTRIES, MAX_DFA_STATES};
use d4c_artifact::eval::Tables;
use d4c_artifact::ops::Kind;
use d4c_artifact::tables::KindMeta;
use d4c_artifact::{to_hex, Artifact};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt::Write;

/// The JSON report.
pub fn report(artifact: &Artifact<'_>, tables: &Tables) -> Value {
    let h = artifact.header();
    let sections: Vec<Value> = artifact
        .sections()
        .map(|s| {
            json!({
                "kind": s.kind().0,
                "name": s.name(),
                "offset": s.entry().offset,
                "bytes": s.entry().length,
                "record_size": s.record_size(),
                "records": s.record_count(),
                "sha256": to_hex(&s.entry().digest),
            })
        })
        .collect();
    let signatures: Vec<String> = artifact.signatures().iter().map(|s| to_hex(&s.key_id)).collect();
    let kinds = |kind: Kind| {
        let meta = tables.kind(kind);
        json!({
            "selectors": meta.selectors.iter().enumerate().map(|(i, s)| json!({
                "index": i,
                "name": s.name,
                "conditions": s.written,
            })).collect::<Vec<_>>(),
            "responses": meta.responses.iter().map(|r| json!({
                "match": names(meta, &r.matches),
                "exclude": names(meta, &r.excludes),
                "actions": r.actions.names(),
            })).collect::<Vec<_>>(),
        })
    };
    json!({
        "header": {
            "policy_name": artifact.policy_name(),
            "revision": h.revision,
            "format_version": h.format_version,
            "abi_version": h.abi_version,
            "compiler_version": artifact.compiler_version(),
            "created_unix": h.created_unix,
            "source_sha256": to_hex(&h.source_digest),
            "content_sha256": to_hex(&h.content_digest),
            "bytes": artifact.bytes().len(),
        },
        "signatures": signatures,
        "sections": sections,
        "limits": limits(tables).iter().map(|(what, used, limit)| json!({"what": what, "used": used, "limit": limit})).collect::<Vec<_>>(),
        "policy_version": tables.meta.policy_version,
        "file": kinds(Kind::File),
        "process": kinds(Kind::Process),
        "tables": {
            "roots": {
                "file_path_root": tables.roots.file_path_root,
                "exe_root": tables.roots.exe_root,
                "name_root": tables.roots.name_root,
            },
            "components": tables.components,
            "states": tables.states.iter().map(|s| json!({
                "accept_class": s.accept_class,
                "subtree_class": s.subtree_class,
                "default_next": s.default_next,
                "prefix_lens": s.prefix_lens.iter().take_while(|&&l| l != 0).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "edges": tables.edges.iter().map(|(k, v)| json!([k.state, k.component, v])).collect::<Vec<_>>(),
            "prefix_edges": tables.prefix_edges.iter().map(|(k, v)| json!([k.state, k.component, v])).collect::<Vec<_>>(),
            "file_path_classes": tables.meta.file_path_classes,
            "file_path_subtree": tables.meta.file_path_subtree,
            "exe_classes": tables.meta.exe_classes,
            "name_classes": tables.meta.name_classes,
            "file_classes": tables.file_classes,
            "process_classes_a": tables.process_classes_a,
            "process_classes_d": tables.process_classes_d,
        },
    })
}

fn names(meta: &KindMeta, indices: &[u32]) -> Vec<String> {
    indices
        .iter()
        .map(|&i| meta.selectors.get(i as usize).map_or_else(|| format!("#{i}"), |s| s.name.clone()))
        .collect()
}

/// `(what, used, limit)` for every capacity limit.
pub fn limits(tables: &Tables) -> Vec<(&'static str, usize, usize)> {
    let paths: BTreeSet<String> = [&tables.meta.file, &tables.meta.process]
        .iter()
        .flat_map(|k| k.selectors.iter())
        .flat_map(|s| s.paths.iter().flatten())
        .map(ToString::to_string)
        .collect();
    let entries = tables.file_classes.len() + tables.process_classes_a.len() + tables.process_classes_d.len();
    vec![
        ("file selectors", tables.meta.file.selectors.len(), MAX_SELECTORS_PER_TYPE),
        ("process selectors", tables.meta.process.selectors.len(), MAX_SELECTORS_PER_TYPE),
        ("file responses", tables.meta.file.responses.len(), MAX_RESPONSES_PER_TYPE),
        ("process responses", tables.meta.process.responses.len(), MAX_RESPONSES_PER_TYPE),
        ("path patterns", paths.len(), MAX_PATH_PATTERNS),
        ("automaton states", tables.states.len(), MAX_DFA_STATES),
        ("class table entries", entries, MAX_CLASS_ENTRIES),
    ]
}

/// The human rendering.
pub fn render_human(path: &str, artifact: &Artifact<'_>, tables: &Tables) -> String {
    // The names, patterns and values come from the artifact: escaped, so
    // that a carriage return or an escape sequence in them shows as such.
    d4c_artifact::display::escape_control_lines(&render_text(path, artifact, tables)).into_owned()
}

fn render_text(path: &str, artifact: &Artifact<'_>, tables: &Tables) -> String {
    let h = artifact.header();
    let mut out = String::new();
    let _ = writeln!(out, "artifact    {path} ({} bytes)", artifact.bytes().len());
    let _ = writeln!(out, "policy      {} (revision {})", artifact.policy_name(), h.revision);
    if let Some(version) = &tables.meta.policy_version {
        let _ = writeln!(out, "version     {version}");
    }
    let _ = writeln!(out, "format      {} (kernel ABI {})", h.format_version, h.abi_version);
    let _ = writeln!(out, "compiler    {}", artifact.compiler_version());
    let created =
        if h.created_unix == 0 { "not recorded (reproducible build)".to_string() } else { h.created_unix.to_string() };
    let _ = writeln!(out, "created     {created}");
    let _ = writeln!(out, "source      sha256:{}", to_hex(&h.source_digest));
    let _ = writeln!(out, "content     sha256:{}", to_hex(&h.content_digest));
    let signatures: Vec<String> = artifact.signatures().iter().map(|s| format!("key {}", to_hex(&s.key_id))).collect();
    let _ =
        writeln!(out, "signatures  {}", if signatures.is_empty() { "none".to_string() } else { signatures.join(", ") });

    let _ = writeln!(out, "\nsections");
    let _ = writeln!(out, "  {:<24} {:>10} {:>9}", "name", "bytes", "records");
    for s in artifact.sections() {
        let name = s.name().map_or_else(|| format!("kind {}", s.kind().0), str::to_string);
        let records = if s.record_size() == 0 { "blob".to_string() } else { s.record_count().to_string() };
        let _ = writeln!(out, "  {name:<24} {:>10} {records:>9}", s.entry().length);
    }

    let _ = writeln!(out, "\nlimits used");
    for (what, used, limit) in limits(tables) {
        let _ = writeln!(out, "  {what:<22} {used:>9} of {limit}");
    }

    let r = &tables.roots;
    let _ = writeln!(out, "\ntables");
    let _ = writeln!(
        out,
        "  automaton            {} states, {} components, {} edges, {} prefix edges",
        tables.states.len(),
        tables.components.len(),
        tables.edges.len(),
        tables.prefix_edges.len()
    );
    let _ = writeln!(
        out,
        "  file                 {} path classes -> {} dynamic classes ({} entries)",
        r.file_path_classes,
        r.file_dyn_classes,
        tables.file_classes.len()
    );
    let _ = writeln!(
        out,
        "  process              {} executable and {} name classes -> {} intermediate -> {} dynamic classes ({} entries)",
        r.exe_classes,
        r.name_classes,
        r.process_a_classes,
        r.process_dyn_classes,
        tables.process_classes_a.len() + tables.process_classes_d.len()
    );

    for kind in [Kind::File, Kind::Process] {
        let meta = tables.kind(kind);
        if meta.selectors.is_empty() && meta.responses.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{} selectors", kind.as_str());
        for s in &meta.selectors {
            let _ = writeln!(out, "  {}", s.name);
            for condition in &s.written {
                let _ = writeln!(out, "    {condition}");
            }
        }
        let _ = writeln!(out, "\n{} responses", kind.as_str());
        for r in &meta.responses {
            let exclude = if r.excludes.is_empty() {
                String::new()
            } else {
                format!(" exclude [{}]", names(meta, &r.excludes).join(", "))
            };
            let _ = writeln!(out, "  match [{}]{exclude} => {}", names(meta, &r.matches).join(", "), r.actions);
        }
    }
    out
}
