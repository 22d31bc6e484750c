//! The checked policy: what the policy means, with every value parsed.
//!
//! Produced by [`crate::check`]; consumed by the lowering to decision tables
//! and by the direct evaluator. Names are resolved to indices, vocabularies
//! to enums, patterns to [`d4c_artifact::patterns`] values. No spans: diagnostics
//! are the check stage's business, meaning is this one's.

use crate::ast::{ConditionKey, PolicyKind};
use d4c_artifact::net::{Cidr, PortRange, Transport};
use d4c_artifact::patterns::{LabelPattern, PathPattern, TextPattern};

pub use d4c_artifact::ops::{Actions, Operation};

/// A checked policy: the three rule sets (empty when a section is absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckedPolicy {
    /// The `version:` string, if written.
    pub version: Option<String>,
    /// File selectors and responses.
    pub file: RuleSet,
    /// Process selectors and responses.
    pub process: RuleSet,
    /// Network selectors and responses.
    pub network: RuleSet,
}

impl CheckedPolicy {
    /// The rule set of `kind`.
    pub fn rules(&self, kind: PolicyKind) -> &RuleSet {
        match kind {
            PolicyKind::File => &self.file,
            PolicyKind::Process => &self.process,
            PolicyKind::Network => &self.network,
        }
    }

    /// The rule set of `kind`, to fill.
    pub fn rules_mut(&mut self, kind: PolicyKind) -> &mut RuleSet {
        match kind {
            PolicyKind::File => &mut self.file,
            PolicyKind::Process => &mut self.process,
            PolicyKind::Network => &mut self.network,
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
    /// Address blocks, normalised (IPv4-mapped blocks are IPv4).
    Addresses(Vec<Cidr>),
    /// Port ranges.
    Ports(Vec<PortRange>),
    /// Transports.
    Transports(Vec<Transport>),
}

impl Values {
    /// Whether no value is kept (every one written was bad or unmatchable).
    pub fn is_empty(&self) -> bool {
        match self {
            Values::Operations(v) => v.is_empty(),
            Values::Text(v) => v.is_empty(),
            Values::Labels(v) => v.is_empty(),
            Values::Paths(v) => v.is_empty(),
            Values::Flag(_) => false,
            Values::Addresses(v) => v.is_empty(),
            Values::Ports(v) => v.is_empty(),
            Values::Transports(v) => v.is_empty(),
        }
    }
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
        (Values::Addresses(a), Values::Addresses(b)) => b.iter().all(|y| a.iter().any(|x| x.covers(y))),
        (Values::Ports(a), Values::Ports(b)) => b.iter().all(|y| a.iter().any(|x| x.covers(y))),
        (Values::Transports(a), Values::Transports(b)) => b.iter().all(|t| a.contains(t)),
        _ => false,
    }
}

/// Whether a condition holds for every operation.
fn values_match_everything(values: &Values) -> bool {
    match values {
        Values::Paths(paths) => paths.iter().any(PathPattern::matches_everything),
        Values::Text(texts) => texts.iter().any(|t| *t == TextPattern::Prefix(String::new())),
        Values::Addresses(blocks) => {
            blocks.iter().any(|b| b.is_whole_family() && b.addr().is_ipv4())
                && blocks.iter().any(|b| b.is_whole_family() && b.addr().is_ipv6())
        }
        Values::Ports(ranges) => ranges.iter().any(PortRange::is_every_port),
        Values::Transports(transports) => Transport::ALL.iter().all(|t| transports.contains(t)),
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
