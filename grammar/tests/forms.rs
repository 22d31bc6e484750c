//! Every form of the language: each operation, container field, step prefix,
//! verdict, string escape and lexical form, with the spans it records.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{parse_ok, step, HEAD};
use d4c_grammar::{Action, ContainerField, Op, Spanned, UserRef, Verdict};

fn sp<T>(value: T, span: std::ops::Range<usize>) -> Spanned<T> {
    Spanned::new(value, span)
}

fn s(value: &str, span: std::ops::Range<usize>) -> Spanned<String> {
    Spanned::new(value.to_owned(), span)
}

// ---- operations -----------------------------------------------------------

#[test]
fn create_with_and_without_mode() {
    //                   0         1         2         3
    //                   0123456789012345678901234567890123456
    let st = step("in web: create /usr/bin/x mode 0755 => block");
    assert_eq!(st.op, sp(Op::Create { path: s("/usr/bin/x", 15..25), mode: Some(sp(0o755, 31..35)) }, 8..35));
    let st = step("in web: create \"/tmp/a b\" => allow");
    assert_eq!(st.op, sp(Op::Create { path: s("/tmp/a b", 15..25), mode: None }, 8..25));
}

#[test]
fn write_truncate_unlink_exec() {
    assert_eq!(step("in web: write /etc/passwd => allow").op.value, Op::Write(s("/etc/passwd", 14..25)));
    assert_eq!(step("in web: truncate /var/log/x => allow").op.value, Op::Truncate(s("/var/log/x", 17..27)));
    assert_eq!(step("in web: unlink \"/x\" => allow").op.value, Op::Unlink(s("/x", 15..19)));
    assert_eq!(step("in web: exec /usr/bin/ls => allow").op.value, Op::Exec(s("/usr/bin/ls", 13..24)));
}

#[test]
fn chmod_takes_a_mode() {
    let st = step("in web: chmod /x 04755 => allow");
    assert_eq!(st.op.value, Op::Chmod { path: s("/x", 14..16), mode: sp(0o4755, 17..22) });
    assert_eq!(step("in web: chmod /x 00 => allow").op.value, Op::Chmod { path: s("/x", 14..16), mode: sp(0, 17..19) });
    assert_eq!(
        step("in web: chmod /x 07777 => allow").op.value,
        Op::Chmod { path: s("/x", 14..16), mode: sp(0o7777, 17..22) }
    );
}

#[test]
fn mknod_with_and_without_mode() {
    assert_eq!(
        step("in web: mknod /dev/x mode 0600 => allow").op.value,
        Op::Mknod { path: s("/dev/x", 14..20), mode: Some(sp(0o600, 26..30)) }
    );
    assert_eq!(step("in web: mknod /dev/x => allow").op.value, Op::Mknod { path: s("/dev/x", 14..20), mode: None });
}

#[test]
fn rename_and_link() {
    let st = step("in web: rename /a to \"/b\" => allow");
    assert_eq!(st.op, sp(Op::Rename { from: s("/a", 15..17), to: s("/b", 21..25) }, 8..25));
    let st = step("in web: link \"/a\" to /b => allow");
    assert_eq!(st.op, sp(Op::Link { from: s("/a", 13..17), to: s("/b", 21..23) }, 8..23));
}

#[test]
fn mkdir_symlink_and_exchange() {
    assert_eq!(
        step("in web: mkdir /d mode 0700 => allow").op.value,
        Op::Mkdir { path: s("/d", 14..16), mode: Some(sp(0o700, 22..26)) }
    );
    assert_eq!(step("in web: mkdir /d => allow").op.value, Op::Mkdir { path: s("/d", 14..16), mode: None });
    let st = step("in web: symlink /tmp/x to \"/usr/bin/x\" => alert");
    assert_eq!(st.op, sp(Op::Symlink { target: s("/tmp/x", 16..22), link: s("/usr/bin/x", 26..38) }, 8..38));
    let st = step("in web: exchange /a with /b => allow");
    assert_eq!(st.op, sp(Op::Exchange { a: s("/a", 17..19), b: s("/b", 25..27) }, 8..27));
    let st = step("in web: setfacl /a 0750 => allow");
    assert_eq!(st.op, sp(Op::Setfacl { path: s("/a", 16..18), mode: sp(0o750, 19..23) }, 8..23));
}

#[test]
fn a_dir_field_with_and_without_mode() {
    let file = parse_ok("policy \"p\" container c { dir /srv/d mode 0700 dir \"/opt\" file /opt/x }");
    let fields: Vec<_> = file.containers[0].fields.iter().map(|f| f.value.clone()).collect();
    assert_eq!(
        fields,
        [
            ContainerField::Dir { path: "/srv/d".into(), mode: Some(0o700) },
            ContainerField::Dir { path: "/opt".into(), mode: None },
            ContainerField::File { path: "/opt/x".into(), mode: None },
        ]
    );
    assert_eq!(file.containers[0].fields[0].value.keyword(), "dir");
}

#[test]
fn fork_and_memfd_exec() {
    let st = step("in web: fork => allow");
    assert_eq!(st.op, sp(Op::Fork, 8..12));
    let st = step("in web: memfd-exec \"payload\" => alert");
    assert_eq!(st.op, sp(Op::MemfdExec(s("payload", 19..28)), 8..28));
}

#[test]
fn every_operation_has_its_keyword() {
    for (line, keyword) in [
        ("create /x", "create"),
        ("write /x", "write"),
        ("truncate /x", "truncate"),
        ("chmod /x 0755", "chmod"),
        ("mknod /x", "mknod"),
        ("rename /x to /y", "rename"),
        ("link /x to /y", "link"),
        ("unlink /x", "unlink"),
        ("exec /x", "exec"),
        ("fork", "fork"),
        ("memfd-exec \"x\"", "memfd-exec"),
        ("mkdir /x", "mkdir"),
        ("symlink /x to /y", "symlink"),
        ("exchange /x with /y", "exchange"),
        ("setfacl /x 0755", "setfacl"),
    ] {
        assert_eq!(step(&format!("in web: {line} => allow")).op.value.keyword(), keyword);
    }
}

// ---- the acting process ----------------------------------------------------

#[test]
fn step_prefix_forms() {
    let st = step("in web: fork => allow");
    assert_eq!((st.actor, st.actor_name, st.interactive), (None, None, false));
    assert_eq!(st.span, 0..21);
    assert_eq!(st.container, s("web", 3..6));

    //                   0         1         2         3         4
    //                   01234567890123456789012345678901234567890123456789
    let st = step("in web as /bin/bash name \"bash\" interactive: fork => allow");
    assert_eq!(st.actor, Some(s("/bin/bash", 10..19)));
    assert_eq!(st.actor_name, Some(s("bash", 25..31)));
    assert!(st.interactive);

    let st = step("in web name \"x\": fork => allow");
    assert_eq!((st.actor, st.actor_name, st.interactive), (None, Some(s("x", 12..15)), false));
    let st = step("in web interactive: fork => allow");
    assert!(st.interactive);
    let st = step("in web as \"/usr/sbin/nginx\": fork => allow");
    assert_eq!(st.actor, Some(s("/usr/sbin/nginx", 10..27)));
}

#[test]
fn a_step_user_is_a_name_or_an_id() {
    //                   0         1         2         3         4         5
    //                   012345678901234567890123456789012345678901234567890123456789
    let st = step("in web as /bin/sh name \"x\" user \"root\" interactive: fork => allow");
    assert_eq!(st.user, Some(sp(UserRef::Name("root".into()), 32..38)));
    assert_eq!(st.actor_name, Some(s("x", 23..26)));
    assert!(st.interactive);
    let st = step("in web user 0: fork => allow");
    assert_eq!(st.user, Some(sp(UserRef::Id(0), 12..13)));
    assert_eq!(step("in web: fork => allow").user, None);
}

#[test]
fn users_make_the_passwd_and_name_the_acting_user() {
    let text = "policy \"p\"\ncontainer a { user \"app\" = 1000 user \"db\"=4294967294 }\n\
                container b { user \"admin\" = 0 }\ncontainer c { user \"root\" = 7 }\ncontainer d {}\n\
                in a user \"app\": fork => allow\nin a user 1000: fork => allow\nin a user 5: fork => allow\n\
                in d user \"root\": fork => allow\n";
    let file = parse_ok(text);
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| &file.containers[i]);
    assert_eq!(
        a.fields.iter().map(|f| f.value.clone()).collect::<Vec<_>>(),
        [
            ContainerField::User { name: "app".into(), id: 1000 },
            ContainerField::User { name: "db".into(), id: 4_294_967_294 }
        ]
    );
    assert_eq!(&text[a.fields[1].span.clone()], "user \"db\"=4294967294");
    assert_eq!(a.fields[0].value.keyword(), "user");
    // root = 0 comes first unless a user is named root or has id 0.
    assert_eq!(a.passwd(), Some(vec![("root", 0), ("app", 1000), ("db", 4_294_967_294)]));
    assert_eq!(b.passwd(), Some(vec![("admin", 0)]));
    assert_eq!(c.passwd(), Some(vec![("root", 7)]));
    assert_eq!(d.passwd(), None);
    let user = |st: usize| file.steps[st].user.as_ref().map(|u| &u.value);
    assert_eq!(a.acting_user(user(0)), Some((1000, Some("app"))));
    assert_eq!(a.acting_user(user(1)), Some((1000, Some("app"))));
    assert_eq!(a.acting_user(user(2)), Some((5, None)));
    assert_eq!(d.acting_user(user(3)), Some((0, Some("root"))));
    // The default is id 0, named as the container names it.
    assert_eq!(a.acting_user(None), Some((0, Some("root"))));
    assert_eq!(b.acting_user(None), Some((0, Some("admin"))));
    assert_eq!(c.acting_user(None), Some((0, None)));
    assert_eq!(d.acting_user(None), Some((0, Some("root"))));
    assert_eq!(c.acting_user(Some(&UserRef::Name("root".into()))), Some((7, Some("root"))));
    assert_eq!(b.acting_user(Some(&UserRef::Name("root".into()))), None);
}

#[test]
fn host_needs_no_declaration() {
    let file = parse_ok("policy \"p\"\nin host: exec /usr/bin/ls => allow\n");
    assert_eq!(file.steps[0].container.value, "host");
    assert!(file.containers.is_empty());
}

#[test]
fn containers_may_be_declared_after_their_steps() {
    let file = parse_ok("policy \"p\"\nin db: fork => allow\ncontainer db {}\n");
    assert_eq!(file.steps.len(), 1);
    assert_eq!(file.containers[0].name.value, "db");
}

#[test]
fn newlines_are_whitespace() {
    let file = parse_ok(
        "policy\n\"p\"\ncontainer\nweb\n{\n}\nin\nweb\n:\nwrite\n/x\n=>\nlog\n,\nblock\n[\na\n]\nin web: fork => allow",
    );
    assert_eq!(file.steps.len(), 2);
    let file = parse_ok("policy \"p\" container web {} in web: fork => allow in web: fork => log");
    assert_eq!(file.steps.len(), 2);
}

// ---- container fields ------------------------------------------------------

#[test]
fn every_container_field() {
    let text = r#"policy "p"
container c_1-x {
  image "nginx"
  namespace "ns"
  pod "pod-1"
  label "k" = "v"
  label "k2"="v2"
  cluster-id "id"
  cluster-name "name"
  volume /data
  volume "/data2"
  volume file /etc/app.yaml
  volume file "/etc/b.yaml"
  file /usr/bin/ls mode 0755
  file "/etc/passwd"
}
"#;
    let file = parse_ok(text);
    let c = &file.containers[0];
    assert_eq!(c.name.value, "c_1-x");
    assert_eq!(&text[c.span.clone()], text.trim_start_matches("policy \"p\"\n").trim_end());
    let values: Vec<ContainerField> = c.fields.iter().map(|f| f.value.clone()).collect();
    assert_eq!(
        values,
        [
            ContainerField::Image("nginx".into()),
            ContainerField::Namespace("ns".into()),
            ContainerField::Pod("pod-1".into()),
            ContainerField::Label { key: "k".into(), value: "v".into() },
            ContainerField::Label { key: "k2".into(), value: "v2".into() },
            ContainerField::ClusterId("id".into()),
            ContainerField::ClusterName("name".into()),
            ContainerField::Volume("/data".into()),
            ContainerField::Volume("/data2".into()),
            ContainerField::VolumeFile("/etc/app.yaml".into()),
            ContainerField::VolumeFile("/etc/b.yaml".into()),
            ContainerField::File { path: "/usr/bin/ls".into(), mode: Some(0o755) },
            ContainerField::File { path: "/etc/passwd".into(), mode: None },
        ]
    );
    let written: Vec<&str> = c.fields.iter().map(|f| &text[f.span.clone()]).collect();
    assert_eq!(written[4], "label \"k2\"=\"v2\"");
    assert_eq!(written[9], "volume file /etc/app.yaml");
    assert_eq!(written[11], "file /usr/bin/ls mode 0755");
    let keywords: Vec<&str> = c.fields.iter().map(|f| f.value.keyword()).collect();
    assert_eq!(keywords[5..11], ["cluster-id", "cluster-name", "volume", "volume", "volume file", "volume file"]);
}

#[test]
fn a_container_may_be_empty_and_on_one_line() {
    let file = parse_ok("policy \"p\" container a {} container b { image \"x\" pod \"y\" }");
    assert_eq!(file.containers.len(), 2);
    assert!(file.containers[0].fields.is_empty());
    assert_eq!(file.containers[1].fields.len(), 2);
}

// ---- verdicts -------------------------------------------------------------

fn verdict(v: &str) -> Spanned<Verdict> {
    step(&format!("in web: fork => {v}")).verdict.map_span()
}

/// Spans counted from the verdict's start (after "in web: fork => ").
trait MapSpan {
    fn map_span(self) -> Self;
}

impl MapSpan for Spanned<Verdict> {
    fn map_span(self) -> Self {
        const AT: usize = "in web: fork => ".len();
        let m = |r: std::ops::Range<usize>| r.start - AT..r.end - AT;
        let value = match self.value {
            Verdict::Allow => Verdict::Allow,
            Verdict::Actions { actions, selectors } => Verdict::Actions {
                actions: actions.into_iter().map(|a| Spanned::new(a.value, m(a.span))).collect(),
                selectors: selectors.map(|s| s.into_iter().map(|n| Spanned::new(n.value, m(n.span))).collect()),
            },
        };
        Spanned::new(value, m(self.span))
    }
}

#[test]
fn allow() {
    assert_eq!(verdict("allow"), sp(Verdict::Allow, 0..5));
}

#[test]
fn actions_without_selectors() {
    assert_eq!(verdict("log"), sp(Verdict::Actions { actions: vec![sp(Action::Log, 0..3)], selectors: None }, 0..3));
    assert_eq!(
        verdict("log, alert,block"),
        sp(
            Verdict::Actions {
                actions: vec![sp(Action::Log, 0..3), sp(Action::Alert, 5..10), sp(Action::Block, 11..16)],
                selectors: None
            },
            0..16
        )
    );
}

#[test]
fn actions_with_selectors() {
    assert_eq!(
        verdict("block, alert [a, b-2]"),
        sp(
            Verdict::Actions {
                actions: vec![sp(Action::Block, 0..5), sp(Action::Alert, 7..12)],
                selectors: Some(vec![s("a", 14..15), s("b-2", 17..20)])
            },
            0..21
        )
    );
}

#[test]
fn selector_names_may_look_like_keywords_or_start_with_a_digit() {
    let all = "policy, container, in, as, name, user, interactive, image, namespace, pod, label, cluster-id, \
               cluster-name, volume, file, mode, create, write, truncate, chmod, mknod, rename, link, to, \
               unlink, exec, fork, memfd-exec, allow, log, alert, block, host, 1st, 0755, 9-lives, x_y, A";
    let v = verdict(&format!("log [{all}]"));
    let Verdict::Actions { selectors: Some(names), .. } = v.value else { panic!("{v:?}") };
    let names: Vec<String> = names.into_iter().map(|n| n.value).collect();
    assert_eq!(names, all.split(", ").collect::<Vec<_>>());
}

// ---- lexical forms ----------------------------------------------------------

#[test]
fn string_escapes() {
    let st = step(r#"in web: memfd-exec "a\"b\\c\nd\te\0f\u{1F600}\u{e9}" => allow"#);
    let Op::MemfdExec(name) = st.op.value else { panic!() };
    assert_eq!(name.value, "a\"b\\c\nd\te\0f\u{1F600}\u{e9}");
}

#[test]
fn strings_may_hold_any_character_but_a_newline() {
    let st = step("in web: write \"/a #b:c,[d]{e}=f ü\" => allow");
    assert_eq!(st.op.value, Op::Write(s("/a #b:c,[d]{e}=f ü", 14..35)));
}

#[test]
fn bare_paths_stop_at_their_delimiters() {
    let st = step("in web: rename /a.b/c-d_e~f@g+h!ü to /x=> allow");
    assert_eq!(st.op.value, Op::Rename { from: s("/a.b/c-d_e~f@g+h!ü", 15..34), to: s("/x", 38..40) });
    let st = step("in web: write /#comment\n=> allow");
    assert_eq!(st.op.value, Op::Write(s("/", 14..15)));
}

#[test]
fn comments_run_to_the_end_of_the_line() {
    let file =
        parse_ok("# head\npolicy \"p\" # tail\ncontainer web { # x\n image \"i\" # y\n }\nin web: fork => allow # z");
    assert_eq!(file.steps.len(), 1);
    assert_eq!(file.containers[0].fields.len(), 1);
}

#[test]
fn the_head_is_valid_alone() {
    let file = parse_ok(HEAD);
    assert_eq!(file.policy.unwrap(), s("p.yaml", 7..15));
    assert_eq!(file.containers[0].span, 16..32);
}

#[test]
fn a_byte_order_mark_is_whitespace() {
    let file = parse_ok("\u{feff}policy \"p\"\n");
    assert_eq!(file.policy.unwrap(), s("p", 10..13));
}
