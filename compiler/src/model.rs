//! The checked policy: what the policy means, with every value parsed.
//!
//! Produced by [`crate::check`]; consumed by the lowering to decision tables
//! and by the direct evaluator. Names are resolved to indices, vocabularies
//! to enums, patterns to [`crate::patterns`] values. No spans: diagnostics
//! are the check stage's business, meaning is this one's.

use crate::ast::{ConditionKey, PolicyKind};
use crate::patterns::{LabelPattern, PathPattern, TextPattern};

/// An operation a selector can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// A new file with an execute bit (created so, or chmod +x of a new file).
    CreateExecutable,
    /// A change to a file that has or gains an execute bit.
    ModifyExecutable,
    /// A new file.
    CreateFile,
    /// A change to an existing file.
    ModifyFile,
    /// A file removed.
    DeleteFile,
    /// An exec of a memfd or other fileless file.
    ExecMemFd,
    /// A process forked.
    Fork,
    /// A program executed.
    Exec,
}

impl Operation {
    /// Every operation.
    pub const ALL: &'static [Operation] = &[
        Operation::CreateExecutable,
        Operation::ModifyExecutable,
        Operation::CreateFile,
        Operation::ModifyFile,
        Operation::DeleteFile,
        Operation::ExecMemFd,
        Operation::Fork,
        Operation::Exec,
    ];

    /// The name written in policies.
    pub fn name(self) -> &'static str {
        match self {
            Operation::CreateExecutable => "createExecutable",
            Operation::ModifyExecutable => "modifyExecutable",
            Operation::CreateFile => "createFile",
            Operation::ModifyFile => "modifyFile",
            Operation::DeleteFile => "deleteFile",
            Operation::ExecMemFd => "execMemFd",
            Operation::Fork => "fork",
            Operation::Exec => "exec",
        }
    }

    /// The type of selector it belongs to.
    pub fn kind(self) -> PolicyKind {
        match self {
            Operation::Fork | Operation::Exec => PolicyKind::Process,
            _ => PolicyKind::File,
        }
    }

    /// The operation named `name` (exact case).
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// Whether it is a file-integrity operation on any file (not only
    /// executables): blocking these needs a `targetFilePath` (`D4C0029`).
    pub fn is_file_integrity(self) -> bool {
        matches!(self, Operation::CreateFile | Operation::ModifyFile | Operation::DeleteFile)
    }
}

/// A set of actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    /// `log`: a document to the file or process data stream.
    pub const LOG: Actions = Actions(1);
    /// `alert`: a document to the alerts data stream.
    pub const ALERT: Actions = Actions(2);
    /// `block`: the operation is refused.
    pub const BLOCK: Actions = Actions(4);

    /// The action named `name`, as written in policies.
    pub fn from_name(name: &str) -> Option<Actions> {
        match name {
            "log" => Some(Actions::LOG),
            "alert" => Some(Actions::ALERT),
            "block" => Some(Actions::BLOCK),
            _ => None,
        }
    }

    /// Both sets.
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// Whether every action of `other` is in `self`.
    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw bits (log = 1, alert = 2, block = 4).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The names, in `log`, `alert`, `block` order.
    pub fn names(self) -> Vec<&'static str> {
        [(Actions::LOG, "log"), (Actions::ALERT, "alert"), (Actions::BLOCK, "block")]
            .into_iter()
            .filter(|(a, _)| self.contains(*a))
            .map(|(_, n)| n)
            .collect()
    }
}

/// A checked policy: both rule sets (empty when a section is absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckedPolicy {
    /// The `version:` string, if written.
    pub version: Option<String>,
    /// File selectors and responses.
    pub file: RuleSet,
    /// Process selectors and responses.
    pub process: RuleSet,
}

impl CheckedPolicy {
    /// The rule set of `kind`.
    pub fn rules(&self, kind: PolicyKind) -> &RuleSet {
        match kind {
            PolicyKind::File => &self.file,
            PolicyKind::Process => &self.process,
        }
    }
}

/// The selectors and responses of one type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// Selectors in source order; responses refer to them by index.
    pub selectors: Vec<SelectorModel>,
    /// Responses in source order.
    pub responses: Vec<ResponseModel>,
}

/// A condition's parsed values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Values {
    /// `operation`: sorted, without duplicates.
    Operations(Vec<Operation>),
    /// Image, tag, namespace, pod, cluster or process-name patterns.
    Text(Vec<TextPattern>),
    /// Pod label patterns.
    Labels(Vec<LabelPattern>),
    /// Path patterns.
    Paths(Vec<PathPattern>),
    /// A flag. `ignoreVolumeMounts: false` and `ignoreVolumeFiles: false`
    /// mean nothing and are not kept.
    Flag(bool),
}

/// A selector: a conjunction of conditions, each a disjunction of values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SelectorModel {
    /// Its name.
    pub name: String,
    /// At most one entry per key, sorted by key.
    pub conditions: Vec<(ConditionKey, Values)>,
}

impl SelectorModel {
    /// The values of condition `key`, if the selector has it.
    pub fn condition(&self, key: ConditionKey) -> Option<&Values> {
        self.conditions.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The operations it is limited to; `None` when any.
    pub fn operations(&self) -> Option<&[Operation]> {
        match self.condition(ConditionKey::Operation) {
            Some(Values::Operations(ops)) => Some(ops),
            _ => None,
        }
    }

    /// Whether it can match a file-integrity operation (`createFile`,
    /// `modifyFile`, `deleteFile`): it names one, or names no operation.
    pub fn may_match_file_integrity(&self) -> bool {
        self.operations().is_none_or(|ops| ops.iter().any(|o| o.is_file_integrity()))
    }

    /// Sound subsumption: true only when every operation `other` matches,
    /// `self` matches too. Each condition of `self` must be at least as broad
    /// as `other`'s condition on the same key; a condition `other` lacks is
    /// broad only when it matches everything.
    pub fn covers(&self, other: &SelectorModel) -> bool {
        self.conditions.iter().all(|(key, mine)| match other.condition(*key) {
            Some(theirs) => values_cover(mine, theirs),
            None => values_match_everything(mine),
        })
    }
}

/// Whether every value in `b` is covered by some value in `a`.
fn values_cover(a: &Values, b: &Values) -> bool {
    match (a, b) {
        (Values::Operations(a), Values::Operations(b)) => b.iter().all(|o| a.contains(o)),
        (Values::Text(a), Values::Text(b)) => b.iter().all(|y| a.iter().any(|x| x.covers(y))),
        (Values::Labels(a), Values::Labels(b)) => b.iter().all(|y| a.iter().any(|x| x.covers(y))),
        (Values::Paths(a), Values::Paths(b)) => b.iter().all(|y| a.iter().any(|x| x.covers(y))),
        (Values::Flag(a), Values::Flag(b)) => a == b,
        _ => false,
    }
}

/// Whether a condition holds for every operation.
fn values_match_everything(values: &Values) -> bool {
    match values {
        Values::Paths(paths) => paths.iter().any(PathPattern::matches_everything),
        Values::Text(texts) => texts.iter().any(|t| *t == TextPattern::Prefix(String::new())),
        _ => false,
    }
}

/// A response: fires when a match selector matches and no exclude does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResponseModel {
    /// Indices into the rule set's selectors; sorted, without duplicates.
    pub matches: Vec<usize>,
    /// Indices into the rule set's selectors; sorted, without duplicates.
    pub excludes: Vec<usize>,
    /// What it does.
    pub actions: Actions,
}
