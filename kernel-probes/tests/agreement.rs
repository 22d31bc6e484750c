//! The kernel's decision function against the table evaluator: for the
//! scenario files' policies and events, and for random policies and
//! events, the XDP harness run through BPF_PROG_TEST_RUN must give the
//! dynamic class of `Tables::dynamic_class` and the actions of the
//! container's `Tables::row`, for every event.
//!
//! Needs root and BPF: a refused bpf() call fails the test with the reason.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use d4c_artifact::eval::Tables;
use d4c_artifact::event::{Container, Event, FileEvent, ProcessEvent, User, Volume};
use d4c_artifact::ops::{Actions, Kind, Operation};
use d4c_artifact::patterns::{LabelPattern, PathPattern, TextPattern};
use d4c_artifact::{aligned_copy, Artifact};
use d4c_kernel_probes::abi;
use d4c_kernel_probes::harness::Harness;
use d4cc::ast::ConditionKey;
use d4cc::compile::{compile, CompileOptions};
use d4cc::model::{CheckedPolicy, ResponseModel, RuleSet, SelectorModel, Values};
use proptest::prelude::*;
use proptest::sample::select;
use std::cell::RefCell;
use std::time::Instant;

// The generators of compiler/tests/agreement.rs, copied.
include!("../../compiler/tests/common/strategies.rs");

fn tables_of(source: &[u8], policy: &CheckedPolicy) -> Tables {
    let bytes = compile(source, policy, &CompileOptions { policy_name: "p".into(), ..Default::default() }).unwrap();
    let aligned = aligned_copy(&bytes);
    let artifact = Artifact::parse(&aligned).unwrap();
    Tables::read(&artifact).unwrap()
}

/// Loads `tables`, writes one row per container (row i for containers[i]),
/// and checks every (container index, event). Returns the verifier count.
fn check(tables: &Tables, containers: &[Container], cases: &[(usize, Event)]) -> Option<u32> {
    let mut harness = match Harness::load(tables, containers.len() * 2 * 4096) {
        Ok(h) => h,
        Err(e) => panic!("the kernel harness cannot run (it needs root and BPF): {e}"),
    };
    for (row, container) in (0u32..).zip(containers) {
        for kind in [Kind::File, Kind::Process] {
            let entries = tables.row(kind, &tables.container_selectors(kind, container));
            harness.set_row(row, kind, &entries).unwrap();
        }
    }
    for (row, event) in cases {
        let kind = event.kind();
        let (want_kind, want_class) = tables.dynamic_class(event);
        // A process event is decided by the row of its container and
        // acting user (what the kernel finds through `d4c_user_rows`).
        let in_row = match event {
            Event::Process(p) => tables.selectors_for(kind, &containers[*row], Some(&p.user)),
            Event::File(_) => tables.container_selectors(kind, &containers[*row]),
            Event::Network(_) => panic!("the harness decides no network events (D4C0044)"),
        };
        let entries = tables.row(kind, &in_row);
        harness.set_row(*row as u32, kind, &entries).unwrap();
        let want_actions = entries.get(want_class as usize).copied().unwrap_or(Actions::NONE);
        let got = harness.decide(event, *row as u32).unwrap();
        assert_eq!(
            (got.kind, got.dyn_class, got.actions, got.flags),
            (want_kind, want_class, want_actions, 0),
            "kernel and table evaluator differ on {event:?} in container {row}: {got:?}"
        );
    }
    harness.verified_instructions()
}

#[test]
fn scenario_files_agree() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/scenarios");
    let started = Instant::now();
    let mut files = 0;
    let mut events = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("d4ct") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (file, errors) = d4c_grammar::parse(&text);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let policy_path = path.parent().unwrap().join(&file.policy.as_ref().unwrap().value);
        let bytes = std::fs::read(&policy_path).unwrap();
        let (_, lint) = d4cc::lint::lint_bytes(policy_path.display().to_string(), bytes.clone());
        let tables = tables_of(&bytes, lint.checked.as_ref().unwrap());
        let recorder = Recorder { tables: &tables, seen: RefCell::new(Vec::new()) };
        let _ = d4cc::scenario::run(&file, &recorder);
        let seen = recorder.seen.into_inner();
        let containers: Vec<Container> = seen.iter().map(|(c, _)| c.clone()).collect();
        let cases: Vec<(usize, Event)> = seen.into_iter().enumerate().map(|(i, (_, e))| (i, e)).collect();
        events += cases.len();
        files += 1;
        let insns = check(&tables, &containers, &cases);
        println!("{}: {} events agree; verifier processed {insns:?} instructions", path.display(), cases.len());
    }
    assert!(files >= 5, "found only {files} scenario files in {}", dir.display());
    println!("scenario files: {files} files, {events} events agree in {:?}", started.elapsed());
}

/// Records every (container, event) the scenario runner decides.
struct Recorder<'a> {
    tables: &'a Tables,
    seen: RefCell<Vec<(Container, Event)>>,
}

impl d4cc::scenario::Decider for Recorder<'_> {
    fn decide(&self, container: &Container, event: &Event) -> d4c_artifact::eval::Verdict {
        self.seen.borrow_mut().push((container.clone(), event.clone()));
        self.tables.decide(container, event)
    }
    fn selector_name(&self, event: &Event, index: usize) -> Option<String> {
        d4cc::scenario::TablesDecider { tables: self.tables }.selector_name(event, index)
    }
    fn has_selector(&self, name: &str) -> bool {
        d4cc::scenario::TablesDecider { tables: self.tables }.has_selector(name)
    }
}

/// Paths the random generator does not make: long, deep, multi-byte, odd.
#[test]
fn edge_paths_agree() {
    let policy = CheckedPolicy {
        network: RuleSet::default(),
        version: None,
        file: RuleSet {
            selectors: vec![SelectorModel {
                name: "s0".into(),
                conditions: vec![(
                    ConditionKey::TargetFilePath,
                    Values::Paths(vec![
                        PathPattern::Prefix("/a/é".into()),
                        PathPattern::Recursive("/deep".into()),
                        PathPattern::Prefix(format!("/long/{}", "x".repeat(40))),
                        PathPattern::Prefix(format!("/long/{}", "y".repeat(200))),
                        PathPattern::Exact(format!("/long/{}", "z".repeat(255))),
                    ]),
                )],
            }],
            responses: vec![ResponseModel { matches: vec![0], excludes: vec![], actions: Actions::BLOCK }],
        },
        process: RuleSet::default(),
    };
    let tables = tables_of(b"edge", &policy);
    let file = |path: String| {
        Event::File(FileEvent {
            operation: Operation::CreateFile,
            path: Some(path),
            volume: Volume::RootFs,
            directory: false,
        })
    };
    let mut paths = vec![
        "/a/é".to_string(),
        "/a/éé".into(),
        "/a/e".into(),
        "/a/\u{e9}x".into(),
        "//a///é//".into(),
        "relative/a".into(),
        String::new(),
        "/".into(),
        format!("/long/{}", "x".repeat(40)),
        format!("/long/{}", "x".repeat(300)),
        format!("/long/{}", "y".repeat(255)),
        format!("/long/{}", "y".repeat(256)),
        format!("/long/{}/more", "y".repeat(1000)),
        format!("/long/{}", "z".repeat(255)),
        format!("/long/{}", "z".repeat(254)),
        format!("/long/{}", "z".repeat(256)),
        format!("/deep{}", "/a".repeat(2045)),
        format!("/deep{}", "/".repeat(4090)),
    ];
    paths.push(format!("/deep/{}", "b".repeat(abi::PATH_MAX - 6)));
    let cases: Vec<(usize, Event)> = paths.into_iter().map(|p| (0, file(p))).collect();
    for (_, e) in &cases {
        if let Event::File(FileEvent { path: Some(p), .. }) = e {
            assert!(p.len() <= abi::PATH_MAX);
        }
    }
    check(&tables, &[Container::default()], &cases);

    // Longer than PATH_MAX: walked up to PATH_MAX and flagged.
    let mut harness = Harness::load(&tables, 64).unwrap();
    harness.set_row(0, Kind::File, &tables.row(Kind::File, &[true])).unwrap();
    let got = harness.decide(&file(format!("/deep{}", "/a".repeat(3000))), 0).unwrap();
    assert_eq!(got.flags & abi::RESULT_TRUNCATED, abi::RESULT_TRUNCATED, "{got:?}");
    // A container without a row: flagged.
    let got = harness.decide(&file("/a/é".into()), 7).unwrap();
    assert_eq!(got.flags & abi::RESULT_NO_ROW, abi::RESULT_NO_ROW, "{got:?}");
    // Timing, for visibility.
    let typical = file("/usr/local/lib/python3/site-packages/x.py".into());
    let timed = harness.decide_repeat(&typical, 0, 10_000).unwrap();
    let deep = harness.decide_repeat(&file(format!("/deep{}", "/a".repeat(2045))), 0, 1000).unwrap();
    println!(
        "verifier processed {:?} instructions; typical path {} ns/run, 2046-component path {} ns/run",
        harness.verified_instructions(),
        timed.duration_ns,
        deep.duration_ns
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn kernel_and_table_evaluator_agree(
        policy in policy(),
        containers in prop::collection::vec(container(), 1..4),
        events in prop::collection::vec((0..4usize, event()), 1..40),
    ) {
        let tables = tables_of(b"generated", &policy);
        let cases: Vec<(usize, Event)> = events.into_iter().map(|(c, e)| (c % containers.len(), e)).collect();
        check(&tables, &containers, &cases);
    }
}
