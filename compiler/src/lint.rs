//! The front end as one call: bytes in, AST, checked policy and sorted
//! diagnostics out. This is what `d4cc lint` runs for each file.

use crate::ast::Policy;
use crate::check::check_policy;
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::CheckedPolicy;
use crate::source::SourceFile;
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
    let root = yaml::parse(source, &mut diagnostics);
    let policy = root.map(|root| read_policy(&root, &source.text, &mut diagnostics));
    let checked = policy.as_ref().map(|p| check_policy(p, &source.text, &mut diagnostics));
    LintOutput { policy, checked, diagnostics: diagnostics.into_sorted() }
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
            (source, LintOutput { policy: None, checked: None, diagnostics: vec![diagnostic] })
        }
    }
}
