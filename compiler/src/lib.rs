//! `d4cc`: the d4c policy compiler.
//!
//! The front end is a pipeline of stages, one module each:
//!
//! 1. [`source`]: bytes to checked UTF-8 text;
//! 2. [`yaml`]: text to a tree of spanned YAML nodes, and [`locate`]: where
//!    in it the policy lives (the file, an Elastic Agent configuration's
//!    input, or a Fleet package policy's `configuration` string);
//! 3. [`syntax`]: YAML nodes to the policy [`ast`], with structural diagnostics
//!    (types, unknown, duplicate, missing and legacy keys);
//! 4. [`check`]: the AST to a checked [`model`] plus semantic diagnostics
//!    (names, references, patterns, responses, limits);
//! 5. [`lower`]: the checked model to decision tables, and [`compile`]: the
//!    tables to artifact bytes.
//!
//! Beside the pipeline: [`direct`] evaluates a policy's meaning straight
//! from the model (the reference the tables are tested against), and
//! [`scenario`] runs scenario files (`d4cc test`).
//!
//! Every stage returns its best result together with every diagnostic it
//! found: one lint run shows all problems.

pub mod ast;
pub mod check;
pub mod codes;
pub mod compile;
pub mod diag;
pub mod diff;
pub mod direct;
pub mod fix;
pub mod inspect;
pub mod limits;
pub mod lint;
pub mod locate;
pub mod lower;
pub mod model;
pub mod render;
pub mod scenario;
pub mod schema;
pub mod seen;
pub mod source;
pub mod span;
pub mod suggest;
pub mod syntax;
pub mod yaml;

/// Containers and events (shared with the runtime).
pub use d4c_artifact::event;
/// The pattern syntaxes (they live with the tables, which the runtime reads).
pub use d4c_artifact::patterns;
