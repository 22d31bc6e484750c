//! Hostile and oversized input: every case ends with a clear diagnostic at a
//! location, in bounded time and memory, never a panic. (Smaller bad-input
//! cases live in the corpus; these are generated because they are large.)

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4c_artifact::eval::Tables;
use d4c_artifact::{aligned_copy, Artifact};
use d4c_testgen::{generate_deep_paths, DEEP_PATHS_PER_SELECTOR};
use d4cc::codes::Code;
use d4cc::compile::{compile, CompileOptions};
use d4cc::limits::{MAX_PATH_PATTERNS, MAX_PATH_PREFIXES, MAX_SELECTORS_PER_TYPE, MAX_SOURCE_BYTES, MAX_YAML_DEPTH};
use d4cc::lint::lint_bytes;
use d4cc::lower::LowerError;
use std::fmt::Write;

fn codes(bytes: Vec<u8>) -> Vec<(Code, usize)> {
    let (_, output) = lint_bytes("hostile.yaml", bytes);
    output.diagnostics.iter().map(|d| (d.code, d.primary.span.start)).collect()
}

#[test]
fn a_100_mb_file_is_refused_without_parsing() {
    let mut bytes = b"file:\n  selectors:\n".to_vec();
    bytes.resize(100 * 1024 * 1024, b' ');
    assert!(bytes.len() > MAX_SOURCE_BYTES);
    assert_eq!(codes(bytes), vec![(Code::InputLimit, 0)]);
}

#[test]
fn deep_flow_nesting_is_a_limit_not_a_crash() {
    let depth = 100_000;
    let text = format!("file: {}{}", "[".repeat(depth), "]".repeat(depth));
    let found = codes(text.into_bytes());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Code::InputLimit);
}

#[test]
fn deep_block_nesting_is_a_limit() {
    let mut text = String::new();
    for level in 0..(MAX_YAML_DEPTH + 10) {
        let _ = writeln!(text, "{}k{level}:", "  ".repeat(level));
    }
    let found = codes(text.into_bytes());
    assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), vec![Code::InputLimit]);
}

#[test]
fn a_billion_laughs_alias_bomb_is_stopped() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let refs = vec![format!("*a{}", level - 1); 10].join(", ");
        let _ = writeln!(text, "a{level}: &a{level} [{refs}]");
    }
    text.push_str("file: *a9\n");
    let found = codes(text.into_bytes());
    assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), vec![Code::InputLimit]);
}

#[test]
fn a_million_keys_in_one_map_are_each_reported_once() {
    // Linear duplicate detection: 200,000 distinct unknown keys give as
    // many diagnostics, not a quadratic stall.
    let mut text = String::from("file:\n  selectors:\n    - name: a\n      operation: [createFile]\n");
    for i in 0..200_000 {
        let _ = writeln!(text, "      k{i}: [x]");
    }
    text.push_str("  responses:\n    - match: [a]\n      actions: [log]\n");
    let found = codes(text.into_bytes());
    assert_eq!(found.len(), 200_000);
    assert!(found.iter().all(|f| f.0 == Code::UnknownKey));
}

#[test]
fn over_the_selector_limit_names_the_figure() {
    let count = MAX_SELECTORS_PER_TYPE + 1;
    let mut text = String::from("process:\n  selectors:\n");
    for i in 0..count {
        let _ = writeln!(text, "    - name: s{i}\n      processName: [p{i}]");
    }
    text.push_str("  responses:\n    - match: [");
    text.push_str(&(0..count).map(|i| format!("s{i}")).collect::<Vec<_>>().join(", "));
    text.push_str("]\n      actions: [log]\n");
    let (_, output) = lint_bytes("many.yaml", text.into_bytes());
    let limits: Vec<_> = output.diagnostics.iter().filter(|d| d.code == Code::LimitExceeded).collect();
    assert_eq!(limits.len(), 1, "{:#?}", output.diagnostics.iter().take(3).collect::<Vec<_>>());
    assert!(limits[0].message.contains(&count.to_string()), "{}", limits[0].message);
    assert!(limits[0].message.contains("16384"), "{}", limits[0].message);
    assert_eq!(output.diagnostics.len(), 1);
}

#[test]
fn over_the_path_pattern_limit_names_the_figure() {
    // 1,024 selectors of 65 distinct paths each: 66,560 patterns.
    let mut text = String::from("file:\n  selectors:\n");
    for i in 0..1024 {
        let paths: Vec<String> = (0..65).map(|j| format!("/d{i}/f{j}")).collect();
        let _ = writeln!(text, "    - name: s{i}\n      targetFilePath: [{}]", paths.join(", "));
    }
    text.push_str("  responses:\n    - match: [");
    text.push_str(&(0..1024).map(|i| format!("s{i}")).collect::<Vec<_>>().join(", "));
    text.push_str("]\n      actions: [log]\n");
    let (_, output) = lint_bytes("paths.yaml", text.into_bytes());
    let limits: Vec<_> = output.diagnostics.iter().filter(|d| d.code == Code::LimitExceeded).collect();
    assert_eq!(limits.len(), 1);
    assert!(limits[0].message.contains("66560"), "{}", limits[0].message);
    assert!(limits[0].message.contains(&MAX_PATH_PATTERNS.to_string()), "{}", limits[0].message);
}

#[test]
fn arbitrary_binary_input_is_reported_not_panicked() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let len = (state % 512) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state & 0xff) as u8
            })
            .collect();
        let (_, output) = lint_bytes("random.bin", bytes);
        assert!(!output.diagnostics.is_empty());
    }
}

/// The distinct path prefixes of `generate_deep_paths(patterns, depth)`:
/// `/data`, then per pattern its own directory and `depth` components, and
/// `/leaf` for every third.
fn deep_prefixes(patterns: usize, depth: usize) -> usize {
    1 + patterns * (depth + 1) + patterns.div_ceil(3)
}

/// Issue 14, fault 10: a deep-path policy within every other limit (5 MB,
/// 2,700 patterns) has over a million distinct path prefixes. It linted
/// clean, and compiling one like it took 22 s and 4.6 GB. Lint now reports
/// the limit where the policy crosses it, and lowering refuses the policy
/// before it builds anything.
#[test]
fn compile_memory_of_deep_paths_is_bounded() {
    let (patterns, depth) = (2_700, 400);
    let text = generate_deep_paths(patterns, depth);
    let prefixes = deep_prefixes(patterns, depth);
    assert!(text.len() < MAX_SOURCE_BYTES && patterns <= MAX_PATH_PATTERNS && prefixes > MAX_PATH_PREFIXES);
    let (_, output) = lint_bytes("deep.yaml", text.clone().into_bytes());
    let found: Vec<(Code, &str)> = output.diagnostics.iter().map(|d| (d.code, d.message.as_str())).collect();
    let message = format!(
        "the path patterns have {prefixes} distinct prefixes (`/a`, `/a/b` and `/a/b/c` of `/a/b/c`); d4c's path automaton holds {MAX_PATH_PREFIXES}"
    );
    assert_eq!(found, vec![(Code::LimitExceeded, message.as_str())]);
    let diagnostic = &output.diagnostics[0];
    assert_eq!(diagnostic.primary.message, format!("prefix {} is added here", MAX_PATH_PREFIXES + 1));
    // The pattern that crosses the limit, and its selector.
    let crossing = (0..patterns).find(|&k| deep_prefixes(k + 1, depth) > MAX_PATH_PREFIXES).unwrap();
    let selector = crossing / DEEP_PATHS_PER_SELECTOR;
    let at = diagnostic.primary.span.start;
    assert!(text[at..].starts_with("targetFilePath:"), "{}", &text[at..at + 40]);
    let named = text[..at].rfind("- name: ").unwrap();
    assert!(text[named..].starts_with(&format!("- name: deep{selector}\n")), "{}", &text[named..named + 20]);

    let checked = output.checked.unwrap();
    assert_eq!(d4cc::lower::path_prefixes(&checked), prefixes);
    assert_eq!(d4cc::lower::lower(&checked).err(), Some(LowerError::TooManyPathPrefixes { prefixes }));
}

/// Within the limit, a deep-path policy compiles to about one automaton
/// state per path prefix, and its artifact grows with the prefixes: twice
/// the depth, twice the states and bytes.
#[test]
fn compiled_deep_paths_grow_linearly_with_their_prefixes() {
    let patterns = 240;
    let mut sizes = Vec::new();
    for depth in [50, 100, 200] {
        let text = generate_deep_paths(patterns, depth);
        let (_, output) = lint_bytes("deep.yaml", text.clone().into_bytes());
        assert!(!output.has_errors(), "{:#?}", output.diagnostics.first());
        let checked = output.checked.unwrap();
        let prefixes = deep_prefixes(patterns, depth);
        assert_eq!(d4cc::lower::path_prefixes(&checked), prefixes);
        let options = CompileOptions { policy_name: "deep".into(), revision: 1, created_unix: None };
        let bytes = compile(text.as_bytes(), &checked, &options).unwrap();
        let tables = Tables::read(&Artifact::parse(&aligned_copy(&bytes)).unwrap()).unwrap();
        // One state per prefix and per root, one per `/*` pattern's pending
        // set and per `/**` pattern's sticky set, and the roots' defaults.
        let states = tables.states.len();
        assert!(states <= prefixes + 3 + 2 * patterns.div_ceil(3) + 3, "{states} states for {prefixes} prefixes");
        assert!(bytes.len() <= 48 * prefixes, "{} bytes for {prefixes} prefixes", bytes.len());
        sizes.push((states, bytes.len()));
    }
    for pair in sizes.windows(2) {
        let ((s1, b1), (s2, b2)) = (pair[0], pair[1]);
        assert!(s2 < 2 * s1 + patterns && b2 < 2 * b1 + 64 * patterns, "{pair:?}");
    }
}
