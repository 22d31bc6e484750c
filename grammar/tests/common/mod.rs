//! Helpers shared by the test files.

// Not every test file uses every helper.
#![allow(dead_code)]

use d4c_grammar::{parse, ScenarioError, ScenarioFile, Span, Step};

/// A policy and one empty container `web`, before the steps under test.
pub const HEAD: &str = "policy \"p.yaml\"\ncontainer web {}\n";

/// Parses `text`, which must have no error.
pub fn parse_ok(text: &str) -> ScenarioFile {
    let (file, errors) = parse(text);
    assert!(errors.is_empty(), "unexpected errors in {text:?}: {errors:#?}");
    file
}

/// Parses `HEAD` and one step line, which must have no error.
pub fn step(line: &str) -> Step {
    let text = format!("{HEAD}{line}\n");
    let mut file = parse_ok(&text);
    assert_eq!(file.steps.len(), 1, "{text:?}");
    let mut step = file.steps.remove(0);
    shift(&mut step, HEAD.len());
    step
}

/// Moves every span of a step `by` bytes back, so spans count from the line's start.
fn shift(step: &mut Step, by: usize) {
    use d4c_grammar::{Op, Verdict};
    let s = |span: &mut Span| *span = span.start - by..span.end - by;
    s(&mut step.span);
    s(&mut step.container.span);
    if let Some(a) = &mut step.actor {
        s(&mut a.span);
    }
    if let Some(a) = &mut step.actor_name {
        s(&mut a.span);
    }
    if let Some(u) = &mut step.user {
        s(&mut u.span);
    }
    s(&mut step.op.span);
    match &mut step.op.value {
        Op::Create { path, mode } | Op::Mknod { path, mode } | Op::Mkdir { path, mode } => {
            s(&mut path.span);
            if let Some(m) = mode {
                s(&mut m.span);
            }
        }
        Op::Chmod { path, mode } | Op::Setfacl { path, mode } => {
            s(&mut path.span);
            s(&mut mode.span);
        }
        Op::Rename { from, to }
        | Op::Link { from, to }
        | Op::Symlink { target: from, link: to }
        | Op::Exchange { a: from, b: to } => {
            s(&mut from.span);
            s(&mut to.span);
        }
        Op::Write(p) | Op::Truncate(p) | Op::Unlink(p) | Op::Exec(p) | Op::MemfdExec(p) => s(&mut p.span),
        Op::Fork => {}
    }
    s(&mut step.verdict.span);
    if let Verdict::Actions { actions, selectors } = &mut step.verdict.value {
        for a in actions {
            s(&mut a.span);
        }
        for n in selectors.iter_mut().flatten() {
            s(&mut n.span);
        }
    }
}

/// An error as the tests compare it: the text under its span, the span, the message and the help.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub text: String,
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

/// Every error of `text`, with the text each points at.
pub fn errors(text: &str) -> Vec<Seen> {
    let (_, errors) = parse(text);
    errors.into_iter().map(|e: ScenarioError| seen(text, e)).collect()
}

fn seen(text: &str, e: ScenarioError) -> Seen {
    Seen { text: text[e.span.clone()].to_owned(), span: e.span, message: e.message, help: e.help }
}

/// The only error of `HEAD` + `line`, its span counted from the line's start.
pub fn step_error(line: &str) -> Seen {
    let text = format!("{HEAD}{line}\n");
    let mut all = errors(&text);
    assert_eq!(all.len(), 1, "expected one error in {line:?}: {all:#?}");
    let mut e = all.remove(0);
    e.span = e.span.start - HEAD.len()..e.span.end - HEAD.len();
    e
}
