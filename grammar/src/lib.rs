//! The d4c scenario language (`*.d4ct`): text in, a [`ScenarioFile`] and
//! every [`ScenarioError`] out. The language is specified in
//! `docs/scenarios.md`; this crate reads it and nothing more: what the
//! steps mean (file states, events, verdicts) is the evaluators'.
//!
//! Stages, each a module:
//!
//! 1. `lexer`: text to tokens with byte spans (`logos`). Unknown characters,
//!    unterminated strings and bad escapes are reported and skipped over.
//! 2. `scenario.lalrpop`: tokens to items (a `lalrpop` LR(1) parser fed by
//!    the `logos` tokens). Recovery is per item and per container field, so a
//!    bad line is one error and the lines after it still parse.
//! 3. `check`: items to the [`ScenarioFile`], with the checks that need no
//!    policy and no file system: one `policy` before any step, unique
//!    containers and fields, known containers, sensible verdicts and modes,
//!    declared users.
//!
//! Invariants: [`parse`] never panics and never recurses on the input's
//! shape (the grammar is flat); every error span lies within the text, on
//! character boundaries; errors come sorted by position.
//!
//! ```
//! let (file, errors) = d4c_grammar::parse(
//!     "policy \"p.yaml\"\ncontainer web { image \"nginx\" }\nin web: exec /usr/bin/ls => log [allProcesses]\n",
//! );
//! assert!(errors.is_empty());
//! assert_eq!(file.steps.len(), 1);
//! ```

mod ast;
mod check;
mod error;
mod lexer;

lalrpop_util::lalrpop_mod!(
    // Generated code, not written to this workspace's lints: lalrpop's state
    // machine indexes its tables directly, unwraps and `panic!`s on states the
    // generator proves unreachable, passes `&mut Vec` to every reduction and
    // spells out long tuple types. Its items are private to this crate.
    #[allow(clippy::panic, clippy::indexing_slicing, clippy::unwrap_used, clippy::ptr_arg, clippy::type_complexity)]
    scenario
);

pub use ast::{
    Action, ContainerDecl, ContainerField, Op, ScenarioFile, Span, Spanned, Step, UserRef, Verdict, PASSWD, ROOT,
};
pub use check::{HOST, MAX_MODE, MAX_USER_ID};
pub use error::{ScenarioError, KEYWORDS};

/// Parses a whole file. Never panics, never stops at the first error where
/// recovery is possible: returns the best file it could read plus every
/// error, sorted by position.
///
/// A step, container or field with a syntax error is left out of the file
/// (its error says why); one that only fails a check (an unknown container,
/// `allow` with actions, a bad mode, which then reads as 0) is kept. An
/// empty error list means the file is fit to be evaluated.
pub fn parse(text: &str) -> (ScenarioFile, Vec<ScenarioError>) {
    let mut errors = Vec::new();
    let tokens = lexer::lex(text, &mut errors);
    let items = match scenario::FileParser::new().parse(text, &mut errors, tokens) {
        Ok(items) => items,
        // Recovery at the item level accepts any token after an error, so
        // this is not expected; if it happens, the error is still reported.
        Err(e) => {
            errors.push(error::from_parse_error(text, e));
            Vec::new()
        }
    };
    let file = check::assemble(text, items, &mut errors);
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    (file, errors)
}
