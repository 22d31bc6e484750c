//! `d4cc`: the d4c policy compiler.
//!
//! The front end is a pipeline of stages, one module each:
//!
//! 1. [`source`]: bytes to checked UTF-8 text;
//! 2. [`yaml`]: text to a tree of spanned YAML nodes;
//! 3. [`syntax`]: YAML nodes to the policy [`ast`], with structural diagnostics
//!    (types, unknown, duplicate, missing and legacy keys);
//! 4. [`check`]: the AST to a checked [`model`] plus semantic diagnostics
//!    (names, references, patterns, responses, limits).
//!
//! Every stage returns its best result together with every diagnostic it
//! found: one lint run shows all problems.

pub mod ast;
pub mod check;
pub mod codes;
pub mod diag;
pub mod fix;
pub mod limits;
pub mod lint;
pub mod model;
pub mod patterns;
pub mod render;
pub mod schema;
pub mod source;
pub mod span;
pub mod suggest;
pub mod syntax;
pub mod testgen;
pub mod yaml;
