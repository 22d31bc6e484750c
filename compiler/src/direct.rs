//! The direct evaluator: a policy's meaning, read straight off the checked
//! model, one selector and one response at a time.
//!
//! It is meant to be obviously right, not fast: it is the reference that
//! the table evaluator (what the kernel computes) is tested against.
//!
//! Meaning:
//! - a selector matches an event when every condition it has holds;
//! - a response fires when a selector of its `match` matches and no
//!   selector of its `exclude` does;
//! - the verdict is the union of the actions of the responses that fire,
//!   and the matched selectors are those of a fired response's `match`
//!   that matched.

use crate::ast::ConditionKey;
use crate::model::{CheckedPolicy, RuleSet, SelectorModel, Values};
use d4c_artifact::event::{Container, Event, Volume};

pub use d4c_artifact::eval::Verdict;

/// Decides `event` in `container` under `policy`.
pub fn evaluate(policy: &CheckedPolicy, container: &Container, event: &Event) -> Verdict {
    evaluate_rules(policy.rules(event.kind()), |s| selector_matches(s, container, event))
}

/// The responses of `rules`, given which selectors match.
pub fn evaluate_rules(rules: &RuleSet, matches: impl Fn(&SelectorModel) -> bool) -> Verdict {
    let matching: Vec<bool> = rules.selectors.iter().map(matches).collect();
    let hit = |i: &usize| matching.get(*i).copied().unwrap_or(false);
    let mut verdict = Verdict::default();
    for response in &rules.responses {
        let matched: Vec<usize> = response.matches.iter().copied().filter(hit).collect();
        if !matched.is_empty() && !response.excludes.iter().any(hit) {
            verdict.actions = verdict.actions.union(response.actions);
            verdict.matched.extend(matched);
        }
    }
    verdict
}

/// Whether every condition of `selector` holds for `event` in `container`.
/// An event on a directory (it stands for the names a move makes below it)
/// is decided for the selectors that name paths: one without
/// `targetFilePath` is about every file wherever it is, and what a moved
/// directory holds was decided when it was made or came with the image.
pub fn selector_matches(selector: &SelectorModel, container: &Container, event: &Event) -> bool {
    if matches!(event, Event::File(f) if f.directory)
        && !selector.conditions.iter().any(|(key, _)| *key == ConditionKey::TargetFilePath)
    {
        return false;
    }
    selector.conditions.iter().all(|(key, values)| condition_holds(*key, values, container, event))
}

fn condition_holds(key: ConditionKey, values: &Values, container: &Container, event: &Event) -> bool {
    let text = |field: &Option<String>| match (values, field) {
        (Values::Text(patterns), Some(value)) => patterns.iter().any(|p| p.matches(value)),
        _ => false,
    };
    match key {
        ConditionKey::Operation => match (values, event) {
            (Values::Operations(ops), Event::File(f)) => ops.contains(&f.operation),
            (Values::Operations(ops), Event::Process(p)) => ops.contains(&p.operation),
            (Values::Operations(ops), Event::Network(n)) => ops.contains(&n.operation),
            _ => false,
        },
        ConditionKey::ContainerImageFullName => match (values, &container.image_full_name) {
            (Values::Text(patterns), Some(name)) => d4c_artifact::event::image_full_name_forms(name)
                .iter()
                .any(|form| patterns.iter().any(|p| p.matches(form))),
            _ => false,
        },
        ConditionKey::ContainerImageName => text(&container.image_name),
        ConditionKey::ContainerImageTag => text(&container.image_tag),
        ConditionKey::KubernetesClusterId => text(&container.cluster_id),
        ConditionKey::KubernetesClusterName => text(&container.cluster_name),
        ConditionKey::KubernetesNamespace => text(&container.namespace),
        ConditionKey::KubernetesPodName => text(&container.pod_name),
        ConditionKey::KubernetesPodLabel => match values {
            Values::Labels(patterns) => {
                patterns.iter().any(|p| p.matches(container.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
            }
            _ => false,
        },
        ConditionKey::TargetFilePath => match (values, event) {
            (Values::Paths(patterns), Event::File(f)) => {
                f.path.as_deref().is_some_and(|path| {
                    // An event on a directory stands for everything in it.
                    if f.directory {
                        patterns.iter().any(|p| p.matches_at_or_below(path))
                    } else {
                        patterns.iter().any(|p| p.matches(path))
                    }
                })
            }
            _ => false,
        },
        ConditionKey::IgnoreVolumeMounts => match (values, event) {
            (Values::Flag(true), Event::File(f)) => f.volume == Volume::RootFs,
            (Values::Flag(false), _) => true,
            _ => false,
        },
        ConditionKey::IgnoreVolumeFiles => match (values, event) {
            (Values::Flag(true), Event::File(f)) => f.volume != Volume::VolumeFile,
            (Values::Flag(false), _) => true,
            _ => false,
        },
        ConditionKey::ProcessExecutable => match (values, event) {
            (Values::Paths(patterns), Event::Process(p)) => patterns.iter().any(|pat| pat.matches(&p.executable)),
            (Values::Paths(patterns), Event::Network(n)) => patterns.iter().any(|pat| pat.matches(&n.executable)),
            _ => false,
        },
        ConditionKey::ProcessName => match (values, event) {
            (Values::Text(patterns), Event::Process(p)) => patterns.iter().any(|pat| pat.matches(&p.name)),
            (Values::Text(patterns), Event::Network(n)) => patterns.iter().any(|pat| pat.matches(&n.name)),
            _ => false,
        },
        ConditionKey::SessionLeaderInteractive => match (values, event) {
            (Values::Flag(wanted), Event::Process(p)) => p.interactive == *wanted,
            _ => false,
        },
        // A uid is compared as its decimal text (checked ids have no
        // leading zero), a name as the container's passwd gives it.
        ConditionKey::ProcessUserId => match (values, event) {
            (Values::Text(patterns), Event::Process(p)) => {
                let id = p.user.id.to_string();
                patterns.iter().any(|pat| pat.matches(&id))
            }
            _ => false,
        },
        ConditionKey::ProcessUserName => match (values, event) {
            (Values::Text(patterns), Event::Process(p)) => {
                p.user.name.as_deref().is_some_and(|name| patterns.iter().any(|pat| pat.matches(name)))
            }
            _ => false,
        },
        // The address is matched normalised (`Cidr::contains`): an
        // IPv4-mapped IPv6 peer is its IPv4 address.
        ConditionKey::DestinationAddress => match (values, event) {
            (Values::Addresses(blocks), Event::Network(n)) => blocks.iter().any(|b| b.contains(n.address)),
            _ => false,
        },
        ConditionKey::DestinationPort => match (values, event) {
            (Values::Ports(ranges), Event::Network(n)) => ranges.iter().any(|r| r.contains(n.port)),
            _ => false,
        },
        ConditionKey::Transport => match (values, event) {
            (Values::Transports(transports), Event::Network(n)) => transports.contains(&n.transport),
            _ => false,
        },
    }
}
