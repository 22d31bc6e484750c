//! The front end as one call: bytes in, AST, checked policy and sorted
//! diagnostics out. This is what `d4cc lint` runs for each file.
//!
//! The policy may be the file, a node of it (an agent configuration's
//! `security-policy`) or a string in it (a Fleet package policy's
//! `configuration`): see [`crate::locate`]. An embedded policy is read as
//! a text of its own, and its diagnostics (labels and fixes too) are
//! brought back to the bytes of the file as written, here, once, through
//! the string's [`Embedding`].

use crate::ast::Policy;
use crate::check::check_policy;
use crate::diag::{Diagnostic, Diagnostics, Edit, Fix, Label};
use crate::locate::{locate, Form, PolicyAt, PolicyMetadata};
use crate::model::CheckedPolicy;
use crate::source::{Embedding, SourceFile};
use crate::syntax::read_policy;
use crate::yaml;

/// The result of linting one file.
#[derive(Debug)]
pub struct LintOutput {
    /// The AST, when the file was YAML with a document.
    pub policy: Option<Policy>,
    /// The checked policy, when the AST could be built. It is the best
    /// reading of the policy; it is only fit to compile when `diagnostics`
    /// hold no error.
    pub checked: Option<CheckedPolicy>,
    /// Every diagnostic, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The form the policy was found in (a plain policy when the file could
    /// not be read).
    pub form: Form,
    /// The package policy's id and revision, when the file gives them.
    pub metadata: PolicyMetadata,
}

impl LintOutput {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == crate::codes::Severity::Error)
    }
}

/// Lints a checked source file.
pub fn lint_source(source: &SourceFile) -> LintOutput {
    let mut diagnostics = Diagnostics::new();
    let mut output = LintOutput {
        policy: None,
        checked: None,
        diagnostics: Vec::new(),
        form: Form::Policy,
        metadata: PolicyMetadata::default(),
    };
    let root = yaml::parse(source, &mut diagnostics);
    if let Some(located) = root.as_ref().and_then(|root| locate(root, &mut diagnostics)) {
        output.form = located.form;
        output.metadata = located.metadata;
        match located.policy {
            PolicyAt::Node(node) => {
                let policy = read_policy(node, &source.text, &mut diagnostics);
                output.checked = Some(check_policy(&policy, &source.text, &mut diagnostics));
                output.policy = Some(policy);
            }
            PolicyAt::Embedded(node) => {
                if let Some((text, embedding)) = yaml::embedded(node, &source.text) {
                    let inner = SourceFile { name: source.name.clone(), text };
                    let mut found = Diagnostics::new();
                    let root = yaml::parse(&inner, &mut found);
                    let policy = root.map(|root| read_policy(&root, &inner.text, &mut found));
                    output.checked = policy.as_ref().map(|p| check_policy(p, &inner.text, &mut found));
                    output.policy = policy;
                    for diagnostic in found.into_sorted() {
                        diagnostics.push(to_file(diagnostic, &embedding));
                    }
                }
            }
        }
    }
    output.diagnostics = diagnostics.into_sorted();
    output
}

/// A diagnostic of an embedded policy, its spans and fixes moved to the
/// file's bytes. A fix whose text cannot be written in the string's style
/// is dropped (its help line stays).
fn to_file(mut diagnostic: Diagnostic, embedding: &Embedding) -> Diagnostic {
    let label = |l: Label| Label { span: embedding.to_file(l.span), message: l.message };
    diagnostic.secondary = diagnostic.secondary.into_iter().map(label).collect();
    diagnostic.primary =
        Label { span: embedding.to_file(diagnostic.primary.span), message: diagnostic.primary.message };
    diagnostic.fix = diagnostic.fix.and_then(|fix| {
        let edits: Option<Vec<Edit>> = fix
            .edits
            .into_iter()
            .map(|e| Some(Edit { span: embedding.to_file(e.span), replacement: embedding.encode(&e.replacement)? }))
            .collect();
        edits.map(|edits| Fix { description: fix.description, edits })
    });
    diagnostic
}

/// Lints raw bytes: decodes them (reporting bad UTF-8 or an over-large file)
/// and lints the text. Returns the source the diagnostics point into.
pub fn lint_bytes(name: impl Into<String>, bytes: Vec<u8>) -> (SourceFile, LintOutput) {
    match SourceFile::from_bytes(name, bytes) {
        Ok(source) => {
            let output = lint_source(&source);
            (source, output)
        }
        Err(err) => {
            let (source, diagnostic) = *err;
            let output = LintOutput {
                policy: None,
                checked: None,
                diagnostics: vec![diagnostic],
                form: Form::Policy,
                metadata: PolicyMetadata::default(),
            };
            (source, output)
        }
    }
}
