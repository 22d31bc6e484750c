//! `parse` takes any text: it never panics, its spans always lie within the
//! text on character boundaries, and its cost stays linear on long inputs
//! (the grammar is flat, so nothing recurses on the input's shape).

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4c_grammar::{parse, Op, ScenarioFile, Span, Verdict, KEYWORDS};
use proptest::prelude::*;

const VALID: &str = r#"# A valid file, the seed of the mutations.
policy "../policies/valid/seed-block-example.yaml"
container web {
    image "docker.io/library/nginx:1.25"
    namespace "default"
    pod "web-7d9f8"
    label "app" = "web"
    cluster-id "4f1c2a9e"
    cluster-name "prod"
    volume "/data"
    volume file "/etc/config/app.yaml"
    file "/usr/bin/ls" mode 0755
    file /etc/passwd
}
in web as "/bin/sh" name "sh" interactive: create "/usr/bin/evil" mode 0755 => alert, block [binDirExeMods]
in web: write "/etc/p\u{e9}sswd\n" => alert, block [etcFileChanges]
in web: chmod /x 04755 => allow
in web: rename /a to /b => log [r, 2nd]
in web: link /a to "/b" => log
in web: mknod /dev/x => allow
in web: truncate /x => allow
in web: unlink /x => allow
in web: fork => allow
in web: memfd-exec "x" => block
in host: exec "/usr/bin/ls" => allow
"#;

/// Pieces besides the keywords ([`KEYWORDS`]) that make the parser go deep.
const EXTRA_PIECES: &[&str] = &[
    "host",
    "web",
    "_x",
    "0755",
    "0789",
    "077777",
    "9",
    "/usr/bin/ls",
    "/",
    "\"s\"",
    "\"a\\u{e9}\\n\"",
    "\"\\q\"",
    "\"open",
    "\"\\",
    "\\",
    "=>",
    "=",
    ":",
    ",",
    "[",
    "]",
    "{",
    "}",
    "#c\n",
    " ",
    "\n",
    "\t",
    "é",
    "%",
    "'",
    "\u{a0}",
    "\u{2028}",
    "\0",
    "\r\n",
];

/// Pieces that make the parser go deep: every keyword, then tokens,
/// near-tokens and junk.
fn pieces() -> Vec<&'static str> {
    KEYWORDS.iter().chain(EXTRA_PIECES).copied().collect()
}

fn check_span(text: &str, span: &Span, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(span.start <= span.end && span.end <= text.len(), "{what} span {span:?} outside {}", text.len());
    prop_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end), "{what} span {span:?}");
    Ok(())
}

/// Every span of the file and of the errors is a valid slice of `text`.
fn check(text: &str) -> Result<(), TestCaseError> {
    let (file, errors) = parse(text);
    for e in &errors {
        check_span(text, &e.span, &e.message)?;
        prop_assert!(!e.message.is_empty() && !e.message.ends_with('.'), "{:?}", e.message);
        prop_assert!(!e.message.starts_with(|c: char| c.is_uppercase()), "{:?}", e.message);
    }
    prop_assert!(errors.windows(2).all(|w| w[0].span.start <= w[1].span.start), "errors out of order");
    check_file(text, &file)?;
    // The same text, the same answer.
    prop_assert_eq!(parse(text), (file, errors));
    Ok(())
}

fn check_file(text: &str, file: &ScenarioFile) -> Result<(), TestCaseError> {
    if let Some(p) = &file.policy {
        check_span(text, &p.span, "policy")?;
    }
    for c in &file.containers {
        check_span(text, &c.span, "container")?;
        check_span(text, &c.name.span, "container name")?;
        for f in &c.fields {
            check_span(text, &f.span, "field")?;
        }
    }
    for s in &file.steps {
        for span in [&s.span, &s.container.span, &s.op.span, &s.verdict.span] {
            check_span(text, span, "step")?;
        }
        let paths: Vec<&Span> = match &s.op.value {
            Op::Create { path, mode } | Op::Mknod { path, mode } | Op::Mkdir { path, mode } => {
                [Some(&path.span), mode.as_ref().map(|m| &m.span)].into_iter().flatten().collect()
            }
            Op::Chmod { path, mode } | Op::Setfacl { path, mode } => vec![&path.span, &mode.span],
            Op::Rename { from, to }
            | Op::Link { from, to }
            | Op::Symlink { target: from, link: to }
            | Op::Exchange { a: from, b: to } => vec![&from.span, &to.span],
            Op::Write(p) | Op::Truncate(p) | Op::Unlink(p) | Op::Exec(p) | Op::MemfdExec(p) => vec![&p.span],
            Op::Fork => vec![],
        };
        for span in paths {
            check_span(text, span, "operand")?;
        }
        if let Verdict::Actions { actions, selectors } = &s.verdict.value {
            for a in actions {
                check_span(text, &a.span, "action")?;
            }
            for n in selectors.iter().flatten() {
                check_span(text, &n.span, "selector")?;
            }
        }
    }
    Ok(())
}

/// The largest char boundary at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..20).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), prop::sample::select(pieces())).prop_map(|(at, p)| Edit::Insert(at, p.to_owned())),
        (any::<usize>(), any::<String>()).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 0usize..200).prop_map(|(at, len)| Edit::Duplicate(at, len)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_owned();
    for e in edits {
        let n = text.len() + 1;
        match e {
            Edit::Delete(at, len) => {
                let start = boundary(&text, at % n);
                let end = boundary(&text, start + len);
                text.replace_range(start..end, "");
            }
            Edit::Insert(at, s) => {
                let at = boundary(&text, at % n);
                text.insert_str(at, s);
            }
            Edit::Duplicate(at, len) => {
                let start = boundary(&text, at % n);
                let end = boundary(&text, start + len);
                let copy = text[start..end].to_owned();
                text.insert_str(end, &copy);
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_string(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn any_sequence_of_pieces(pieces in prop::collection::vec(prop::sample::select(pieces()), 0..60)) {
        check(&pieces.join(" "))?;
        check(&pieces.concat())?;
    }

    #[test]
    fn mutations_of_a_valid_file(edits in prop::collection::vec(edit(), 1..6)) {
        check(&apply(VALID, &edits))?;
    }
}

#[test]
fn the_seed_is_valid() {
    let (file, errors) = parse(VALID);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(file.steps.len(), 11);
}

#[test]
fn long_inputs_stay_linear() {
    // 50,000 steps, a 50,000-name selector list, 50,000 fields, 50,000
    // errors in a row: each runs in well under a second in a debug build.
    let mut text = String::from("policy \"p\"\ncontainer web {\n");
    text.push_str(&"  label \"k\" = \"v\"\n".repeat(50_000));
    text.push_str("}\n");
    text.push_str(&"in web: write /x => log\n".repeat(50_000));
    text.push_str("in web: fork => log [");
    text.push_str(&(0..50_000).map(|i| format!("s{i}")).collect::<Vec<_>>().join(","));
    text.push_str("]\n");
    text.push_str(&"in web: frob => allow\n".repeat(50_000));
    text.push_str(&"{[%".repeat(50_000));
    let start = std::time::Instant::now();
    let (file, errors) = parse(&text);
    assert_eq!(file.steps.len(), 50_001);
    assert_eq!(file.containers[0].fields.len(), 50_000);
    // Each repeated label is one error, each bad step one and each `%` one;
    // the `{[` pairs are dropped by the recovery from the last bad step.
    assert_eq!(errors.len(), 49_999 + 50_000 + 50_000, "{:?}", &errors[errors.len() - 3..]);
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}

#[test]
fn long_names_stay_linear() {
    // Suggestions ("did you mean") compare names; they are skipped for long
    // names and for files with many containers.
    let long_a = "a".repeat(300_000);
    let long_b = "b".repeat(300_000);
    let mut text =
        format!("policy \"p\"\ncontainer {long_a} {{}}\nin {long_b}: fork => allow\nin web: {long_b} => allow\n");
    for i in 0..1000 {
        text.push_str(&format!("container c{i} {{}}\n"));
    }
    text.push_str(&"in x: fork => allow\n".repeat(10_000));
    let start = std::time::Instant::now();
    let (_, errors) = parse(&text);
    assert_eq!(errors.len(), 2 + 10_000);
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
}
