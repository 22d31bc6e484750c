//! Errors: exact spans, messages and help lines, and recovery so that one
//! bad line never hides another.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{errors, step_error, Seen, HEAD};
use d4c_grammar::{parse, Op, Verdict};

fn seen(text: &str, span: std::ops::Range<usize>, message: &str, help: Option<&str>) -> Seen {
    Seen { text: text.to_owned(), span, message: message.to_owned(), help: help.map(str::to_owned) }
}

// ---- syntax -----------------------------------------------------------------

#[test]
fn unknown_operation() {
    assert_eq!(
        step_error("in web: frobnicate /x => allow"),
        seen(
            "frobnicate",
            8..18,
            "expected an operation, found `frobnicate`",
            Some(
                "the operations are `create`, `write`, `truncate`, `chmod`, `mknod`, `rename`, `link`, \
                 `unlink`, `exec`, `fork` and `memfd-exec`"
            )
        )
    );
}

#[test]
fn misspelt_operation_gets_a_suggestion() {
    assert_eq!(
        step_error("in web: crate /x => allow"),
        seen("crate", 8..13, "expected an operation, found `crate`", Some("did you mean `create`?"))
    );
    assert_eq!(step_error("in web: memfd_exec \"x\" => allow").help.as_deref(), Some("did you mean `memfd-exec`?"));
}

#[test]
fn missing_arrow() {
    assert_eq!(step_error("in web: write /x allow"), seen("allow", 17..22, "expected `=>`, found `allow`", None));
    assert_eq!(
        step_error("in web: create /x allow"),
        seen("allow", 18..23, "expected one of `mode` or `=>`, found `allow`", None)
    );
}

#[test]
fn missing_verdict_at_the_end_of_the_file() {
    let text = format!("{HEAD}in web: write /x =>");
    let end = text.len();
    assert_eq!(
        errors(&text),
        [seen("", end..end, "expected one of `allow`, `log`, `alert` or `block`, found the end of the file", None)]
    );
}

#[test]
fn missing_colon_and_prefix_order() {
    assert_eq!(
        step_error("in web write /x => allow"),
        seen("write", 7..12, "expected one of `as`, `name`, `user`, `interactive` or `:`, found `write`", None)
    );
    assert_eq!(
        step_error("in web interactive as /x: fork => allow"),
        seen("as", 19..21, "expected `:`, found `as`", None)
    );
}

#[test]
fn a_user_is_a_quoted_name_or_an_id() {
    assert_eq!(
        step_error("in web user app: fork => allow"),
        seen(
            "app",
            12..15,
            "expected a user id such as `1000` or a string, found `app`",
            Some("a user is a name in quotes, such as `\"app\"`, or a user id")
        )
    );
    let text = format!("{HEAD}container a {{ user \"x\" = x }}\n");
    assert_eq!(errors(&text), [seen("x", 58..59, "expected a user id such as `1000`, found `x`", None)]);
}

#[test]
fn user_ids_are_decimal_and_in_range() {
    assert_eq!(
        step_error("in web user 0755: fork => allow"),
        seen(
            "0755",
            12..16,
            "user id `0755` has a leading zero",
            Some("a user id is written in decimal, without leading zeros")
        )
    );
    assert_eq!(
        step_error("in web user 1st: fork => allow"),
        seen("1st", 12..15, "`1st` is not a user id", Some("a user id is a decimal number from `0` to `4294967294`"))
    );
    let text = format!("{HEAD}container a {{ user \"x\" = 4294967295 }}\n");
    assert_eq!(
        errors(&text),
        [seen(
            "4294967295",
            58..68,
            "user id `4294967295` is out of range",
            Some("the largest user id is `4294967294`: `4294967295` means no user")
        )]
    );
}

#[test]
fn user_names_fit_in_passwd() {
    let help = Some("a user name is not empty and has no `:` and no control character, as `/etc/passwd` holds it");
    let text = format!("{HEAD}container a {{ user \"a:b\" = 1 user \"\" = 2 }}\n");
    assert_eq!(
        errors(&text),
        [
            seen("\"a:b\"", 52..57, "`a:b` is not a user name", help),
            seen("\"\"", 67..69, "`` is not a user name", help)
        ]
    );
}

#[test]
fn users_are_declared_once_and_alone_make_passwd() {
    let text = "policy \"p\"\ncontainer a {\nuser \"app\" = 1\nuser \"app\" = 2\nuser \"db\" = 1\n\
                file \"/etc/passwd\"\nfile \"/etc/group\"\n}\n";
    let all = errors(text);
    assert_eq!(
        all,
        [
            seen(
                "user \"app\" = 2",
                40..54,
                "user `app` is given twice in container `a` (first on line 3)",
                Some("`/etc/passwd` names each user once: remove one of them")
            ),
            seen(
                "user \"db\" = 1",
                55..68,
                "user id `1` is given twice in container `a` (first on line 3, as `app`)",
                Some("a process has one user id, and d4c one name for it: give each user its own id")
            ),
            seen(
                "file \"/etc/passwd\"",
                69..87,
                "`file \"/etc/passwd\"` clashes with the `user` fields of container `a` (line 3): they make `/etc/passwd`",
                Some("the `user` fields make `/etc/passwd` a file (mode 0644) that names them: remove this field")
            ),
        ]
    );
}

#[test]
fn a_step_user_must_be_known_to_its_container() {
    let text = "policy \"p\"\ncontainer a { user \"app\" = 1000 }\ncontainer b {}\n\
                in a user \"web\": fork => allow\nin b user \"app\": fork => allow\nin b user 1000: fork => allow\n\
                in host user 0: fork => allow\nin b user 0: fork => allow\nin b user \"root\": fork => allow\n\
                in a user 5: fork => allow\n";
    let all = errors(text);
    assert_eq!(
        all,
        [
            seen(
                "\"web\"",
                70..75,
                "container `a` declares no user `web`",
                Some(
                    "no process runs as a name its container's `/etc/passwd` lacks: declare it with \
                     `user \"web\" = ID` in the container (it names `root`, `app`)"
                )
            ),
            seen(
                "\"app\"",
                101..106,
                "container `b` declares no user `app`",
                Some(
                    "no process runs as a name its container's `/etc/passwd` lacks: declare it with \
                     `user \"app\" = ID` in the container (it names `root`)"
                )
            ),
            seen(
                "1000",
                132..136,
                "container `b` declares no users, so user id `1000` has no known name",
                Some(
                    "declare the container's users with `user \"NAME\" = ID`, so that the VM and the model \
                     agree on its `/etc/passwd`"
                )
            ),
            seen(
                "0",
                165..166,
                "`in host` takes no `user`",
                Some("operations on the host are not decided, whoever performs them: leave out `user`")
            ),
        ]
    );
}

#[test]
fn a_path_where_a_string_is_required() {
    assert_eq!(step_error("in web: memfd-exec /x => allow"), seen("/x", 19..21, "expected a string, found `/x`", None));
}

#[test]
fn a_word_where_a_path_is_required() {
    assert_eq!(
        step_error("in web: write etc => allow"),
        seen(
            "etc",
            14..17,
            "expected a path, found `etc`",
            Some("a path is a bare absolute path such as `/usr/bin/ls`, or a quoted string")
        )
    );
}

#[test]
fn a_keyword_as_a_container_name() {
    let text = "policy \"p\"\ncontainer log {}\n";
    assert_eq!(
        errors(text),
        [seen("log", 21..24, "expected a name, found `log`", Some("`log` is a keyword, which cannot be a name"))]
    );
}

#[test]
fn unknown_container_field() {
    let text = "policy \"p\"\ncontainer web {\n  imag \"x\"\n  pod \"p\"\n}\n";
    assert_eq!(
        errors(text),
        [seen("imag", 29..33, "expected a container field or `}`, found `imag`", Some("did you mean `image`?"))]
    );
    // Recovery is per field: the container and its next field survive.
    let (file, _) = parse(text);
    assert_eq!(file.containers.len(), 1);
    assert_eq!(file.containers[0].fields.len(), 1);
}

#[test]
fn missing_closing_brace_loses_only_the_container() {
    let text = "policy \"p\"\ncontainer web {\n  image \"x\"\nin web: fork => allow\n";
    let all = errors(text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        all[0],
        seen("in", 39..41, "expected a container field or `}`, found `in`", Some("close the container with `}`"))
    );
    assert_eq!(all[1].message, "unknown container `web`");
    let (file, _) = parse(text);
    assert_eq!(file.steps.len(), 1);
}

#[test]
fn unterminated_block() {
    let text = "policy \"p\"\ncontainer web {";
    assert_eq!(
        errors(text),
        [seen(
            "",
            26..26,
            "expected a container field or `}`, found the end of the file",
            Some("close the container with `}`")
        )]
    );
}

// ---- lexical ----------------------------------------------------------------

#[test]
fn bad_octal_mode() {
    assert_eq!(
        step_error("in web: create /x mode 0789 => allow"),
        seen(
            "0789",
            23..27,
            "`0789` is not an octal mode",
            Some("a mode is `0` followed by octal digits (`0` to `7`), such as `0755`")
        )
    );
    assert_eq!(
        step_error("in web: chmod /x 755 => allow"),
        seen(
            "755",
            17..20,
            "`755` is not an octal mode",
            Some("a mode is written in octal with a leading `0`, such as `0755`")
        )
    );
    assert_eq!(
        step_error("in web: chmod /x 0 => allow"),
        seen(
            "0",
            17..18,
            "`0` is not an octal mode",
            Some("a mode is `0` followed by octal digits: write `00` for no permissions")
        )
    );
    assert_eq!(step_error("in web: chmod /x 0x1ff => allow").message, "`0x1ff` is not an octal mode");
}

#[test]
fn mode_too_large() {
    let expected = |text: &str, span| {
        seen(
            text,
            span,
            &format!("mode `{text}` is out of range"),
            Some("the largest mode is `07777`: permission bits, setuid, setgid and sticky"),
        )
    };
    assert_eq!(step_error("in web: chmod /x 010000 => allow"), expected("010000", 17..23));
    // Beyond u32 too.
    assert_eq!(
        step_error("in web: chmod /x 07777777777777777777777 => allow"),
        expected("07777777777777777777777", 17..40)
    );
    // In a container's `file` too.
    let text = "policy \"p\"\ncontainer web { file /x mode 077777 }\n";
    assert_eq!(errors(text), [expected("077777", 40..46)]);
}

#[test]
fn an_invalid_mode_reads_as_zero_and_keeps_the_step() {
    let (file, errors) = parse(&format!("{HEAD}in web: chmod /x 0999 => allow\n"));
    assert_eq!(errors.len(), 1);
    let Op::Chmod { mode, .. } = &file.steps[0].op.value else { panic!() };
    assert_eq!(mode.value, 0);
}

#[test]
fn unterminated_string() {
    let text = format!("{HEAD}in web: memfd-exec \"abc\nin web: fork => allow\n");
    let all = errors(&text);
    let at = HEAD.len();
    assert_eq!(
        all,
        [
            seen("\"abc", at + 19..at + 23, "unterminated string", Some("close it with `\"` on the same line")),
            seen("in", at + 24..at + 26, "expected `=>`, found `in`", None),
        ]
    );
    // The next line still parses.
    assert_eq!(parse(&text).0.steps.len(), 1);
}

#[test]
fn unterminated_string_at_the_end_of_the_file() {
    let text = "policy \"p.yaml";
    assert_eq!(
        errors(text),
        [seen("\"p.yaml", 7..14, "unterminated string", Some("close it with `\"` on the same line"))]
    );
    assert_eq!(parse(text).0.policy.unwrap().value, "p.yaml");
    assert_eq!(errors("policy \"p\\")[0].span, 7..10);
}

#[test]
fn bad_escapes() {
    let text = "policy \"a\\qb\\u{110000}c\\u{}d\\u12\"";
    let all = errors(text);
    let escapes = "the escapes are `\\\"`, `\\\\`, `\\n`, `\\t`, `\\0` and `\\u{...}`";
    let unicode = "write `\\u{` and 1 to 6 hex digits of a Unicode scalar value, then `}`";
    assert_eq!(
        all,
        [
            seen("\\q", 9..11, "unknown escape `\\q`", Some(escapes)),
            seen("\\u{110000}", 12..22, "invalid unicode escape `\\u{110000}`", Some(unicode)),
            seen("\\u{}", 23..27, "invalid unicode escape `\\u{}`", Some(unicode)),
            seen("\\u", 28..30, "invalid unicode escape `\\u`", Some(unicode)),
        ]
    );
    // A bad escape is kept as written.
    assert_eq!(parse(text).0.policy.unwrap().value, "a\\qb\\u{110000}c\\u{}d\\u12");
}

#[test]
fn unknown_characters() {
    let help = "outside quotes, a scenario has only names, `\"strings\"`, `/paths`, octal modes, \
                `=>`, `:`, `,`, `[`, `]`, `{`, `}`, `=` and `#` comments";
    // A run of unknown characters is one error; the step around it still parses.
    let text = format!("{HEAD}in web: fork => allow %$&\n");
    let at = HEAD.len();
    assert_eq!(errors(&text), [seen("%$&", at + 22..at + 25, "unexpected characters `%$&`", Some(help))]);
    assert_eq!(parse(&text).0.steps.len(), 1);

    assert_eq!(
        errors("policy 'p'"),
        [
            // The policy did not parse, so there is none.
            seen(
                "",
                0..0,
                "the scenario names no policy",
                Some("start it with `policy \"path/to/policy.yaml\"`, relative to the scenario file"),
            ),
            seen("'", 7..8, "unexpected character `'`", Some("strings are written in double quotes: `\"...\"`")),
            seen("p", 8..9, "expected a string, found `p`", None),
            seen("'", 9..10, "unexpected character `'`", Some("strings are written in double quotes: `\"...\"`")),
        ]
    );
    // Multi-byte characters are reported whole.
    let text = "policy \"p\" é";
    assert_eq!(errors(text), [seen("é", 11..13, "unexpected character `é`", Some(help))]);
}

#[test]
fn relative_bare_path() {
    let all = errors(&format!("{HEAD}in web: write ./x => allow\n"));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].text, ".");
    assert_eq!(all[0].help.as_deref(), Some("a bare path starts with `/`; quote any other path: `\"../x\"`"));
}

// ---- checks -----------------------------------------------------------------

#[test]
fn duplicate_policy() {
    let text = "policy \"a\"\ncontainer web {}\npolicy \"b\"\n";
    assert_eq!(
        errors(text),
        [seen(
            "\"b\"",
            35..38,
            "`policy` is given twice (first on line 1)",
            Some("a scenario tests exactly one policy")
        )]
    );
    assert_eq!(parse(text).0.policy.unwrap().value, "a");
}

#[test]
fn policy_after_a_step() {
    let text = "container web {}\nin web: fork => allow\npolicy \"a\"\n";
    assert_eq!(
        errors(text),
        [seen(
            "\"a\"",
            46..49,
            "`policy` comes after the first step (on line 2)",
            Some("move `policy` before the first `in`")
        )]
    );
    assert_eq!(parse(text).0.policy.unwrap().value, "a");
}

#[test]
fn missing_policy() {
    let help = "start it with `policy \"path/to/policy.yaml\"`, relative to the scenario file";
    assert_eq!(errors(""), [seen("", 0..0, "the scenario names no policy", Some(help))]);
    assert_eq!(errors("in host: fork => allow"), [seen("", 0..0, "the scenario names no policy", Some(help))]);
}

#[test]
fn undeclared_container() {
    assert_eq!(
        step_error("in db: fork => allow"),
        seen(
            "db",
            3..5,
            "unknown container `db`",
            Some("declare it with `container db { ... }`, or run the step `in host`")
        )
    );
    assert_eq!(step_error("in wbe: fork => allow").help.as_deref(), Some("did you mean `web`?"));
}

#[test]
fn duplicate_container() {
    let text = "policy \"p\"\ncontainer web {}\ncontainer web { image \"x\" }\n";
    assert_eq!(
        errors(text),
        [seen(
            "web",
            38..41,
            "container `web` is declared twice (first on line 2)",
            Some("give each container its own name")
        )]
    );
}

#[test]
fn host_is_reserved() {
    let text = "policy \"p\"\ncontainer host {}\n";
    assert_eq!(
        errors(text),
        [seen(
            "host",
            21..25,
            "`host` is reserved",
            Some("`in host` runs an operation outside any container; give this container another name")
        )]
    );
}

#[test]
fn duplicate_fields() {
    let text = "policy \"p\"\ncontainer web {\n image \"a\"\n image \"b\"\n label \"k\" = \"1\"\n label \"k\" = \"2\"\n label \"j\" = \"2\"\n volume /v\n volume file /v\n file /f\n file /f mode 0755\n file /g\n}\n";
    let all: Vec<(String, String)> = errors(text).into_iter().map(|e| (e.text, e.message)).collect();
    assert_eq!(
        all,
        [
            ("image \"b\"".into(), "`image` is given twice in container `web` (first on line 3)".into()),
            ("label \"k\" = \"2\"".into(), "label `k` is given twice in container `web` (first on line 5)".into()),
            ("volume file /v".into(), "volume file `/v` is given twice in container `web` (first on line 8)".into()),
            ("file /f mode 0755".into(), "file `/f` is given twice in container `web` (first on line 10)".into()),
        ]
    );
}

#[test]
fn allow_with_actions() {
    assert_eq!(
        step_error("in web: fork => allow, block"),
        seen(
            "allow",
            16..21,
            "`allow` cannot be combined with actions",
            Some("`allow` means no response fires: write either `allow` alone or the actions")
        )
    );
    // The actions are kept.
    let (file, _) = parse(&format!("{HEAD}in web: fork => log, allow\n"));
    assert!(matches!(&file.steps[0].verdict.value, Verdict::Actions { actions, .. } if actions.len() == 1));
}

#[test]
fn allow_with_selectors() {
    assert_eq!(
        step_error("in web: fork => allow [a]"),
        seen(
            "[a]",
            22..25,
            "`allow` takes no selector list",
            Some("`allow` means no response fires, so nothing reports a selector")
        )
    );
}

#[test]
fn duplicate_actions_and_selectors() {
    assert_eq!(
        step_error("in web: fork => block, log, block"),
        seen("block", 28..33, "`block` is given twice", Some("a verdict names each action once"))
    );
    assert_eq!(step_error("in web: fork => allow, allow").message, "`allow` is given twice");
    assert_eq!(
        step_error("in web: fork => log [a, b, a]"),
        seen("a", 27..28, "selector `a` is given twice", Some("the selector list is a set: name each selector once"))
    );
}

#[test]
fn empty_selector_list() {
    assert_eq!(
        step_error("in web: fork => log []"),
        seen("[]", 20..22, "empty selector list", Some("list the selectors that match, or leave out `[]`"))
    );
    assert_eq!(step_error("in web: fork => log [ ]").span, 20..23);
}

#[test]
fn selector_name_syntax() {
    assert_eq!(
        step_error("in web: fork => log [_a]"),
        seen("_a", 21..23, "`_a` is not a selector name", Some("a selector name starts with a letter or a digit"))
    );
    assert_eq!(step_error("in web: fork => log [a,]"), seen("]", 23..24, "expected a selector name, found `]`", None));
}

// ---- recovery ---------------------------------------------------------------

#[test]
fn three_bad_lines_and_two_good_ones() {
    let text = format!(
        "{HEAD}\
         in web: frobnicate /x => allow\n\
         in web: write /etc/passwd => log\n\
         in web: create /x mode => allow\n\
         in web: fork => allow\n\
         in web: write /x\n"
    );
    let (file, errors) = parse(&text);
    assert_eq!(file.steps.len(), 2, "{file:#?}");
    assert!(matches!(&file.steps[0].op.value, Op::Write(p) if p.value == "/etc/passwd"));
    assert_eq!(file.steps[1].op.value, Op::Fork);
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "expected an operation, found `frobnicate`",
            "expected an octal mode such as `0755`, found `=>`",
            "expected `=>`, found the end of the file",
        ]
    );
}

#[test]
fn every_error_of_a_file_is_reported_in_order() {
    let text = "policy \"p\"\npolicy \"q\"\ncontainer web { imag \"x\" }\nin db: fork => allow\nin web: chmod /x 0999 => log []\nin web: fork => block, allow\n";
    let all = errors(text);
    let messages: Vec<&str> = all.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "`policy` is given twice (first on line 1)",
            "expected a container field or `}`, found `imag`",
            "unknown container `db`",
            "`0999` is not an octal mode",
            "empty selector list",
            "`allow` cannot be combined with actions",
        ]
    );
    assert!(all.windows(2).all(|w| w[0].span.start <= w[1].span.start));
}

#[test]
fn long_tokens_are_shortened_in_messages() {
    let long = "x".repeat(100);
    let e = step_error(&format!("in web: {long} => allow"));
    assert_eq!(e.message, format!("expected an operation, found `{}...`", "x".repeat(40)));
    assert_eq!(e.span, 8..108);
}

#[test]
fn messages_show_control_characters_escaped_and_quotes_as_written() {
    let text = "policy \"p\"\ncontainer x { label \"k\" \"v\" }\n\u{7}";
    let all = errors(text);
    assert_eq!(all[0].message, "expected `=`, found `\"v\"`");
    assert_eq!(all[1].message, "unexpected character `\\u{7}`");
}

#[test]
fn no_suggestion_for_short_words_or_punctuation() {
    assert_eq!(step_error("in web: fork => log [a b]").help, None);
    assert_eq!(step_error("in web: fork => lg").help, None);
}

#[test]
fn display() {
    let (_, errors) = parse("policy \"p\" %");
    assert_eq!(errors[0].to_string().split(" (help").next(), Some("11..12: unexpected character `%`"));
}
