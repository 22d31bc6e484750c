//! The example in `docs/scenarios.md`, read from the spec itself, parses to
//! the AST it describes.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::parse_ok;
use d4c_grammar::{Action, ContainerField, Op, ScenarioFile, Spanned, Verdict};

/// The first ```text block of the spec.
fn spec_example() -> String {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/scenarios.md")).unwrap();
    let start = spec.find("```text\n").unwrap() + "```text\n".len();
    let len = spec[start..].find("```").unwrap();
    spec[start..start + len].to_owned()
}

/// The value of a spanned string, checking that its span covers the text it came from.
fn at<'a>(text: &str, s: &'a Spanned<String>) -> &'a str {
    let written = &text[s.span.clone()];
    assert!(written == s.value || written == format!("\"{}\"", s.value), "{written:?} for {s:?}");
    &s.value
}

#[test]
fn the_spec_example_parses() {
    let text = spec_example();
    let file: ScenarioFile = parse_ok(&text);

    let policy = file.policy.as_ref().unwrap();
    assert_eq!(at(&text, policy), "../policies/valid/seed-block-example.yaml");

    assert_eq!(file.containers.len(), 1);
    let web = &file.containers[0];
    assert_eq!(at(&text, &web.name), "web");
    assert!(text[web.span.clone()].starts_with("container web {"));
    assert!(text[web.span.clone()].ends_with('}'));
    let fields: Vec<&ContainerField> = web.fields.iter().map(|f| &f.value).collect();
    assert_eq!(
        fields,
        [
            &ContainerField::Image("docker.io/library/nginx:1.25".into()),
            &ContainerField::Namespace("default".into()),
            &ContainerField::Pod("web-7d9f8".into()),
            &ContainerField::Label { key: "app".into(), value: "web".into() },
            &ContainerField::Label { key: "app.kubernetes.io/name".into(), value: "web".into() },
            &ContainerField::ClusterId("4f1c2a9e-0d3b-4c55-9a57-1f0e1d2c3b4a".into()),
            &ContainerField::ClusterName("prod".into()),
            &ContainerField::Volume("/data".into()),
            &ContainerField::VolumeFile("/etc/config/app.yaml".into()),
            &ContainerField::File { path: "/usr/bin/ls".into(), mode: Some(0o755) },
            &ContainerField::File { path: "/etc/passwd".into(), mode: None },
            &ContainerField::Dir { path: "/srv/cache".into(), mode: None },
        ]
    );
    // A field's span runs from its keyword to its last value, comments excluded.
    assert_eq!(&text[web.fields[3].span.clone()], "label \"app\" = \"web\"");
    assert_eq!(&text[web.fields[8].span.clone()], "volume file \"/etc/config/app.yaml\"");
    assert_eq!(&text[web.fields[9].span.clone()], "file \"/usr/bin/ls\" mode 0755");

    assert_eq!(file.steps.len(), 5);
    let s = &file.steps;

    // in web as "/bin/sh" interactive: create "/usr/bin/evil" mode 0755 => alert, block [binDirExeMods]
    assert_eq!(
        &text[s[0].span.clone()],
        "in web as \"/bin/sh\" interactive: create \"/usr/bin/evil\" mode 0755 => alert, block [binDirExeMods]"
    );
    assert_eq!(at(&text, &s[0].container), "web");
    assert_eq!(at(&text, s[0].actor.as_ref().unwrap()), "/bin/sh");
    assert_eq!(s[0].actor_name, None);
    assert!(s[0].interactive);
    let Op::Create { path, mode } = &s[0].op.value else { panic!("{:?}", s[0].op) };
    assert_eq!(at(&text, path), "/usr/bin/evil");
    assert_eq!(mode.as_ref().map(|m| m.value), Some(0o755));
    assert_eq!(&text[mode.as_ref().unwrap().span.clone()], "0755");
    assert_eq!(&text[s[0].op.span.clone()], "create \"/usr/bin/evil\" mode 0755");
    assert_eq!(&text[s[0].verdict.span.clone()], "alert, block [binDirExeMods]");
    let Verdict::Actions { actions, selectors } = &s[0].verdict.value else { panic!() };
    assert_eq!(actions.iter().map(|a| a.value).collect::<Vec<_>>(), [Action::Alert, Action::Block]);
    let selectors = selectors.as_ref().unwrap();
    assert_eq!(selectors.len(), 1);
    assert_eq!(at(&text, &selectors[0]), "binDirExeMods");

    // in web: write "/etc/passwd" => alert, block [etcFileChanges]
    assert_eq!(s[1].actor, None);
    assert!(!s[1].interactive);
    assert!(matches!(&s[1].op.value, Op::Write(p) if p.value == "/etc/passwd"));

    // in web as "/usr/sbin/nginx": write "/etc/passwd" => allow
    assert_eq!(s[2].actor.as_ref().unwrap().value, "/usr/sbin/nginx");
    assert_eq!(s[2].verdict.value, Verdict::Allow);

    // in web: exec "/usr/bin/ls" => log [allProcesses]
    assert!(matches!(&s[3].op.value, Op::Exec(p) if p.value == "/usr/bin/ls"));
    let Verdict::Actions { actions, selectors } = &s[3].verdict.value else { panic!() };
    assert_eq!(actions.iter().map(|a| a.value).collect::<Vec<_>>(), [Action::Log]);
    assert_eq!(selectors.as_ref().unwrap()[0].value, "allProcesses");

    // in host: exec "/usr/bin/ls" => allow
    assert_eq!(at(&text, &s[4].container), "host");
    assert_eq!(s[4].verdict.value, Verdict::Allow);
}

#[test]
fn the_spec_example_parses_the_same_with_bare_paths_and_no_comments() {
    let text = spec_example();
    let stripped: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap().trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\"/usr/bin/evil\"", "/usr/bin/evil")
        .replace("\"/etc/passwd\"", "/etc/passwd");
    let (a, b) = (parse_ok(&text), parse_ok(&stripped));
    assert_eq!(shape(&a), shape(&b));
}

/// What a file says, without spans.
fn shape(file: &ScenarioFile) -> Vec<String> {
    let mut out: Vec<String> =
        file.containers.iter().flat_map(|c| c.fields.iter().map(|f| format!("{:?}", f.value))).collect();
    for s in &file.steps {
        let verdict = match &s.verdict.value {
            Verdict::Allow => "allow".to_owned(),
            Verdict::Actions { actions, selectors } => format!(
                "{:?} {:?}",
                actions.iter().map(|a| a.value).collect::<Vec<_>>(),
                selectors.as_ref().map(|s| s.iter().map(|n| n.value.clone()).collect::<Vec<_>>())
            ),
        };
        let path = match &s.op.value {
            Op::Create { path, .. } | Op::Write(path) | Op::Exec(path) => path.value.clone(),
            other => format!("{other:?}"),
        };
        out.push(format!(
            "{} {:?} {} {path} => {verdict}",
            s.container.value,
            s.actor.as_ref().map(|a| &a.value),
            s.op.value.keyword()
        ));
    }
    out
}
