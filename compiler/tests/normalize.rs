//! One truth for what a value can match: no value that lint accepts is
//! unmatchable by construction.
//!
//! For random values of every container condition (and `processName`),
//! biased towards the edges (paths in image names, registries that are not
//! registries, `index.docker.io`, prefixes at the length limits), a policy
//! holding the value is linted. When lint accepts it, the runtime's own
//! normalisation (`d4c_artifact::normalize`) of a witness fact must give a
//! container (or process) that the checked selector matches, through the
//! direct evaluator. Conversely, every value the runtime's normalisation
//! makes from a valid image reference is a value lint accepts.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4c_artifact::event::{Event, ProcessEvent, User};
use d4c_artifact::normalize::{self, comm, container, witness, witness_label, Facts, REFERENCE_NAME_BYTES};
use d4c_artifact::ops::Operation;
use d4c_artifact::patterns::{LabelPattern, TextPattern, TextSyntax};
use d4cc::codes::Severity;
use d4cc::direct::selector_matches;
use d4cc::lint::lint_bytes;
use proptest::prelude::*;
use proptest::sample::select;

/// The conditions under test, with the syntax of their values.
const CONDITIONS: &[(&str, Option<TextSyntax>)] = &[
    ("containerImageName", Some(TextSyntax::ImageName)),
    ("containerImageFullName", Some(TextSyntax::ImageFullName)),
    ("containerImageTag", Some(TextSyntax::ImageTag)),
    ("kubernetesNamespace", Some(TextSyntax::Namespace)),
    ("kubernetesPodName", Some(TextSyntax::PodName)),
    ("kubernetesClusterId", Some(TextSyntax::Cluster)),
    ("kubernetesClusterName", Some(TextSyntax::Cluster)),
    ("kubernetesPodLabel", None),
    ("processName", Some(TextSyntax::ProcessName)),
    ("processUserName", Some(TextSyntax::UserName)),
    ("processUserId", Some(TextSyntax::UserId)),
];

/// Whether lint accepts `value` for `condition`: the policy holding it has
/// no error.
fn accepted(condition: &str, value: &str) -> Option<d4cc::model::SelectorModel> {
    let quoted = serde_json::to_string(value).unwrap();
    let text = format!(
        "process:\n  selectors:\n    - name: s\n      {condition}: [{quoted}]\n  responses:\n    - match: [s]\n      actions: [log]\n"
    );
    let (_, output) = lint_bytes("p.yaml", text.into_bytes());
    if output.diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return None;
    }
    output.checked.and_then(|c| c.process.selectors.into_iter().next())
}

fn exec(executable: &str) -> Event {
    exec_as(executable, User::root())
}

fn exec_as(executable: &str, user: User) -> Event {
    Event::Process(ProcessEvent {
        operation: Operation::Exec,
        executable: executable.to_string(),
        name: comm(executable),
        interactive: false,
        user,
    })
}

/// Checks that an accepted value matches its witness once normalised.
fn check(condition: &str, syntax: Option<TextSyntax>, value: &str) -> Result<(), TestCaseError> {
    let Some(selector) = accepted(condition, value) else { return Ok(()) };
    let (container, event) = match syntax {
        None => {
            let pattern = LabelPattern::parse(value).unwrap();
            let (k, v) =
                witness_label(&pattern).ok_or_else(|| TestCaseError::fail(format!("no witness for {value}")))?;
            (container(&Facts { labels: vec![(&k, &v)], ..Facts::default() }), exec("/bin/sh"))
        }
        Some(syntax) => {
            let pattern = TextPattern::parse(value, syntax).unwrap();
            let raw = witness(syntax, &pattern).ok_or_else(|| {
                TestCaseError::fail(format!("lint accepts `{value}` for {condition}, but no fact matches it"))
            })?;
            let facts = match syntax {
                TextSyntax::ImageName | TextSyntax::ImageFullName | TextSyntax::ImageTag => {
                    let name = raw.split('@').next().unwrap_or(&raw);
                    let name = name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(name, |(n, _)| n);
                    prop_assert!(name.len() <= REFERENCE_NAME_BYTES, "witness `{raw}` longer than Docker allows");
                    Facts { image: Some(&raw), ..Facts::default() }
                }
                TextSyntax::Namespace => Facts { namespace: Some(&raw), ..Facts::default() },
                TextSyntax::PodName => Facts { pod_name: Some(&raw), ..Facts::default() },
                TextSyntax::Cluster if condition == "kubernetesClusterId" => {
                    Facts { cluster_id: Some(&raw), ..Facts::default() }
                }
                TextSyntax::Cluster => Facts { cluster_name: Some(&raw), ..Facts::default() },
                TextSyntax::ProcessName | TextSyntax::UserName | TextSyntax::UserId => Facts::default(),
            };
            let event = match syntax {
                TextSyntax::ProcessName => exec(&raw),
                // A user of that name (the container's passwd gives it).
                TextSyntax::UserName => exec_as("/bin/sh", User { id: 4242, name: Some(raw.clone()) }),
                // The user of that id: the runtime compares the uid.
                TextSyntax::UserId => {
                    let id = raw.parse().map_err(|_| TestCaseError::fail(format!("witness `{raw}` is not a uid")))?;
                    exec_as("/bin/sh", User { id, name: None })
                }
                _ => exec("/bin/sh"),
            };
            (container(&facts), event)
        }
    };
    prop_assert!(
        selector_matches(&selector, &container, &event),
        "lint accepts `{value}` for {condition}, but its witness does not match: {container:?} {event:?}"
    );
    Ok(())
}

/// Values near the edges of what can match.
fn value() -> impl Strategy<Value = String> {
    let prefix = select(vec![
        "",
        "library/",
        "docker.io/",
        "docker.io/library/",
        "index.docker.io/",
        "localhost/",
        "localhost:5000/",
        "registry.example.com/team/",
        "myreg/",
        "Reg/",
        "[::1]:5000/",
        "app:",
        "example.com/app:",
        "kube-",
        "web.",
    ]);
    let body = prop_oneof![
        "[a-z0-9]{1,6}([._-][a-z0-9]{1,4}){0,2}",
        "[a-z0-9._:/@*-]{0,12}",
        "0?[0-9]{1,10}",
        (
            select(vec![60usize, 61, 62, 63, 64, 235, 236, 237, 250, 251, 252, 253, 254, 255, 256]),
            select(vec!["", "-", ".", "a"])
        )
            .prop_map(|(n, end)| format!("{}{end}", "a".repeat(n))),
    ];
    (prefix, body, select(vec!["", "*"])).prop_map(|(p, b, star)| format!("{p}{b}{star}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn every_value_lint_accepts_has_a_matching_fact(index in 0..CONDITIONS.len(), value in value()) {
        let (condition, syntax) = CONDITIONS[index];
        check(condition, syntax, &value)?;
    }

    /// The other way round: what the runtime makes of a valid reference,
    /// written as an exact value, is accepted.
    #[test]
    fn lint_accepts_every_field_the_runtime_makes(
        registry in select(vec!["", "docker.io/", "index.docker.io/", "gcr.io/", "localhost/", "localhost:5000/", "[::1]:5000/", "Reg.example.com/"]),
        path in prop::collection::vec("[a-z0-9]{1,5}([._-][a-z0-9]{1,3})?", 1..4),
        tag in prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}"),
    ) {
        let reference = format!("{registry}{}{}", path.join("/"), tag.as_ref().map_or(String::new(), |t| format!(":{t}")));
        let (full, name, tag) = normalize::split_image(&reference);
        for (condition, value) in [("containerImageFullName", Some(full)), ("containerImageName", Some(name)), ("containerImageTag", tag)] {
            let Some(value) = value else { continue };
            prop_assert!(accepted(condition, &value).is_some(), "`{reference}` gives {condition} `{value}`, which lint refuses");
        }
    }
}

/// The cases the issue names, and their edges, always run.
#[test]
fn named_cases() {
    for (condition, value, ok) in [
        ("containerImageName", "library/nginx", false),
        ("containerImageName", "nginx", true),
        ("containerImageFullName", "library/nginx", false),
        ("containerImageFullName", "index.docker.io/nginx", false),
        ("containerImageFullName", "docker.io/nginx", true),
        ("containerImageFullName", "[::1]:5000/app", true),
        ("kubernetesNamespace", &format!("{}-*", "a".repeat(62)), false),
        ("kubernetesNamespace", &format!("{}-*", "a".repeat(61)), true),
        ("containerImageName", &"a".repeat(254), false),
        ("containerImageName", &"a".repeat(253), true),
        ("processUserId", "1000", true),
        ("processUserId", "01000", false),
        ("processUserId", "4294967295", false),
        ("processUserId", "10*", false),
        ("processUserName", "www-data", true),
        ("processUserName", "app:x", false),
    ] {
        assert_eq!(accepted(condition, value).is_some(), ok, "{condition}: {value}");
        let syntax = CONDITIONS.iter().find(|(c, _)| *c == condition).and_then(|(_, s)| *s);
        check(condition, syntax, value).unwrap();
    }
}
