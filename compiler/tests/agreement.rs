//! Two evaluators, one meaning: for random policies and random events, the
//! table evaluator (reading the compiled artifact's bytes, computing what
//! the kernel computes) and the direct evaluator (reading the checked
//! model) must give the same actions and the same matched selectors.
//!
//! Values come from small alphabets so that random patterns and random
//! events meet often: every pattern kind, nested directories, prefixes that
//! overlap, names that are prefixes of each other.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use d4c_artifact::eval::Tables;
use d4c_artifact::event::{Container, Event, FileEvent, ProcessEvent, User, Volume};
use d4c_artifact::ops::{Actions, Kind, Operation};
use d4c_artifact::patterns::{LabelPattern, PathPattern, TextPattern};
use d4c_artifact::{aligned_copy, Artifact};
use d4cc::ast::ConditionKey;
use d4cc::compile::{compile, CompileOptions};
use d4cc::direct;
use d4cc::model::{CheckedPolicy, ResponseModel, RuleSet, SelectorModel, Values};
use proptest::prelude::*;
use proptest::sample::select;

include!("common/strategies.rs");

fn tables_of(policy: &CheckedPolicy) -> Tables {
    let bytes =
        compile(b"generated", policy, &CompileOptions { policy_name: "p".into(), ..Default::default() }).unwrap();
    let aligned = aligned_copy(&bytes);
    let artifact = Artifact::parse(&aligned).unwrap();
    Tables::read(&artifact).unwrap()
}

/// The selectors of the row the runtime and the kernel use for `event` in
/// `container`: a process event's user, when the runtime lists it among
/// the container's named users (its passwd naming it as the event does),
/// has a row of its own; everyone else has the container's.
fn runtime_row(tables: &Tables, kind: Kind, container: &Container, event: &Event) -> Vec<bool> {
    let Event::Process(p) = event else { return tables.container_selectors(kind, container) };
    let passwd: Vec<(u32, &str)> = p.user.name.as_deref().map(|n| (p.user.id, n)).into_iter().collect();
    match tables.named_users(passwd).into_iter().find(|u| u.id == p.user.id) {
        Some(named) => {
            assert_eq!(named, p.user, "the runtime names the user as its passwd does");
            tables.selectors_for(kind, container, Some(&named))
        }
        None => tables.container_selectors(kind, container),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn table_and_direct_evaluators_agree(
        policy in policy(),
        cases in prop::collection::vec((container(), event()), 1..40),
    ) {
        let tables = tables_of(&policy);
        for (container, event) in &cases {
            let direct = direct::evaluate(&policy, container, event);
                        let table = tables.decide(container, event);
            prop_assert_eq!(&table, &direct, "event {:?} in {:?}", event, container);
            // What the kernel will do: the dynamic class, then the row of
            // the container, or of the container and the acting user when
            // the runtime gave the user one (`Tables::named_users` over a
            // passwd that names the user as the event does).
            let (kind, class) = tables.dynamic_class(event);
            let row = tables.row(kind, &runtime_row(&tables, kind, container, event));
            prop_assert_eq!(row.get(class as usize).copied(), Some(direct.actions), "row entry for {:?}", event);
        }
    }

    /// The row of a container whose metadata is pending fails closed: it
    /// has every action any container's row has, class by class.
    #[test]
    fn the_unknown_container_row_covers_every_container(
        policy in policy(),
        containers in prop::collection::vec(container(), 1..12),
    ) {
        let tables = tables_of(&policy);
        for kind in [Kind::File, Kind::Process] {
            let unknown = tables.row_for_unknown_container(kind);
            let users = [User::root(), User { id: 1000, name: Some("app".into()) }, User { id: 4242, name: None }];
            for (container, user) in containers.iter().flat_map(|c| users.iter().map(move |u| (c, u))) {
                let row = tables.row(kind, &tables.selectors_for(kind, container, Some(user)));
                prop_assert_eq!(row.len(), unknown.len());
                for (class, (a, u)) in row.iter().zip(&unknown).enumerate() {
                    prop_assert_eq!(a.union(*u), *u, "class {} of {:?} in {:?}", class, kind, container);
                }
            }
        }
    }
}

/// The same source compiles to the same bytes.
#[test]
fn compilation_is_deterministic_for_every_shipped_policy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut compiled = 0;
    for dir in ["testdata/policies/valid", "deploy/policies"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let (_, output) = d4cc::lint::lint_bytes(path.display().to_string(), bytes.clone());
            let checked = output.checked.expect("a valid policy has a checked model");
            let options = CompileOptions { policy_name: "p".into(), revision: 3, created_unix: None };
            let first = compile(&bytes, &checked, &options).unwrap();
            let second = compile(&bytes, &checked, &options).unwrap();
            assert_eq!(first, second, "{} compiles to different bytes", path.display());
            compiled += 1;
        }
    }
    assert!(compiled > 20);
}
