//! Selector value patterns: parsing with precise errors, matching, and covering.
//!
//! Text in, typed patterns out. Each `parse` takes the text of one condition
//! value and returns a pattern or one [`PatternError`] whose `at` is a byte
//! range *within that value*; the caller shifts it to the value's span in the
//! file. Limits (path length, component count, value length) are checked
//! elsewhere, with the figures of [`crate::limits`].
//!
//! - [`PathPattern`] (`targetFilePath`, `processExecutable`): `/a/b` exact,
//!   `/a/*` direct children, `/a/**` the directory and everything below it,
//!   `/a*` every path starting with `/a`. The kernel reports canonical
//!   absolute paths, so patterns with `//`, `.`, `..` or a trailing `/`
//!   could never match and are errors.
//! - [`TextPattern`] (image names and tags, Kubernetes names, cluster ids and
//!   names, process names): exact, or a trailing `*` for "starts with"; the
//!   character rules depend on the [`TextSyntax`].
//! - [`LabelPattern`] (`kubernetesPodLabel`): `key:value`, the value a
//!   [`TextPattern`].
//!
//! Decisions:
//! - `/x/**` matches `/x` itself as well as everything below it: a rename or
//!   delete of the directory would otherwise escape a policy that protects
//!   everything in it. `/x/*` matches direct children only, not `/x`.
//!   `/x*` matches `/x`, `/x/y` and `/xy`. A relative path matches nothing.
//! - `covers` is sound (a `true` is always right) and, for patterns `parse`
//!   produces, exact.
//! - A trailing `*` relaxes only the rules on how a text value *ends* (`web-*`);
//!   a `containerImageFullName` prefix needs no `/` yet (`docker.io*`). The
//!   first component of a full image name is always the registry.

use std::fmt;
use std::ops::Range;

/// A syntax error inside one value.
///
/// `at` is the byte range within the value text that is wrong: never empty,
/// except for a missing thing, where it is the empty range where that thing
/// belongs. `message` is lowercase, without a final period, with user text in
/// backticks; `help`, when present, is a sentence saying how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    /// The offending bytes, relative to the start of the value.
    pub at: Range<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl PatternError {
    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PatternError {}

/// A `PatternError` at `at`.
fn err(at: Range<usize>, message: impl Into<String>) -> PatternError {
    PatternError { at, message: message.into(), help: None }
}

/// The bytes of `c`, which starts at `start`.
fn char_at(start: usize, c: char) -> Range<usize> {
    start..start + c.len_utf8()
}

/// A character as shown in a message: in backticks, or as `U+XXXX` when invisible.
fn show(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("U+{:04X}", u32::from(c))
    } else {
        format!("`{c}`")
    }
}

/// The run of `*` that starts at byte `start` of `text`.
fn star_run(text: &str, start: usize) -> Range<usize> {
    let rest = text.get(start..).unwrap_or("");
    start..start + (rest.len() - rest.trim_start_matches('*').len())
}

/// The value at `start..` of `text` as a text pattern, its body not yet
/// checked: a trailing `*` makes a prefix, any other `*` is an error.
fn split_star<'t>(text: &'t str, start: usize, what: &str) -> Result<(&'t str, TextPattern), PatternError> {
    let value = text.get(start..).unwrap_or("");
    let (body, open) = value.strip_suffix('*').map_or((value, false), |body| (body, true));
    if let Some(i) = body.find('*') {
        let example = text.get(..start + i).unwrap_or("");
        let help = format!("a wildcard may only end {what}, as in `{example}*`");
        return Err(err(star_run(text, start + i), "misplaced wildcard `*`").help(help));
    }
    let owned = body.to_owned();
    Ok((body, if open { TextPattern::Prefix(owned) } else { TextPattern::Exact(owned) }))
}

const PATH_WILDCARD_HELP: &str = "a wildcard may only end a pattern: `/dir/*`, `/dir/**` or `/prefix*`";

/// A `targetFilePath` / `processExecutable` pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum PathPattern {
    /// `/usr/bin/echo`: that path only.
    Exact(String),
    /// `/usr/sbin/*`: the direct children of the directory, stored without
    /// the `/*`; `/*` is `Children("")`.
    Children(String),
    /// `/usr/local/**`: the directory itself and everything below it, stored
    /// without the `/**`; `/**` is `Recursive("")`, every path.
    Recursive(String),
    /// `/usr/sbin*`: every path starting with the text before the `*`, stored
    /// without it. `parse` never yields a prefix ending in `/` (that is
    /// written `/dir/*`, a `Children`).
    Prefix(String),
}

impl PathPattern {
    /// Parses one path pattern.
    pub fn parse(text: &str) -> Result<PathPattern, PatternError> {
        let Some(first) = text.chars().next() else {
            return Err(err(0..0, "empty path").help("write an absolute path such as `/etc/passwd`"));
        };
        if let Some(i) = text.find('\0') {
            return Err(err(i..i + 1, "NUL character in a path"));
        }
        if first != '/' {
            return Err(err(char_at(0, first), format!("`{text}` is not an absolute path"))
                .help(format!("the kernel reports absolute paths: write `/{text}`")));
        }
        let pattern = if let Some(body) = text.strip_suffix("/**") {
            PathPattern::Recursive(body.to_owned())
        } else if let Some(body) = text.strip_suffix("/*") {
            PathPattern::Children(body.to_owned())
        } else if let Some(body) = text.strip_suffix('*') {
            PathPattern::Prefix(body.to_owned())
        } else {
            PathPattern::Exact(text.to_owned())
        };
        let body = pattern.body();
        if let Some(i) = body.find('*') {
            let run = star_run(text, i);
            let stars = text.get(run.clone()).unwrap_or("*");
            return Err(err(run, format!("misplaced wildcard `{stars}`")).help(PATH_WILDCARD_HELP));
        }
        pattern.check_components()?;
        Ok(pattern)
    }

    /// The text before the wildcard (all of it for `Exact`).
    fn body(&self) -> &str {
        match self {
            PathPattern::Exact(b) | PathPattern::Children(b) | PathPattern::Recursive(b) | PathPattern::Prefix(b) => b,
        }
    }

    /// Rejects components the kernel never reports: empty, `.` and `..`.
    /// The body starts with `/` (or is empty, for `/*` and `/**`); offsets in
    /// the body are offsets in the written text.
    fn check_components(&self) -> Result<(), PatternError> {
        let body = self.body();
        let exact = matches!(self, PathPattern::Exact(_));
        if body.is_empty() || (exact && body == "/") {
            return Ok(());
        }
        let parts: Vec<&str> = body.split('/').skip(1).collect();
        let mut off = 1;
        for (k, part) in parts.iter().enumerate() {
            let last = k + 1 == parts.len();
            // The last component of a prefix continues in the path: `/a/.*` matches `/a/.x`.
            let partial = last && matches!(self, PathPattern::Prefix(_));
            let (at, message) = match *part {
                "" if last && exact => (off - 1..off, "trailing `/`: the kernel reports paths without a trailing `/`"),
                "" => (off - 1..off + 1, "empty component `//`: the kernel reports paths without repeated `/`"),
                "." if !partial => (off..off + 1, "`.` component: the kernel reports paths without `.` components"),
                ".." if !partial => (off..off + 2, "`..` component: the kernel reports resolved paths, without `..`"),
                _ => {
                    off += part.len() + 1;
                    continue;
                }
            };
            let mut help = format!("write `{}`", self.canonical());
            if part.is_empty() && last && exact {
                help += &format!(", or `{}/**` for the directory and everything below it", body.trim_end_matches('/'));
            }
            return Err(err(at, message).help(help));
        }
        Ok(())
    }

    /// This pattern with empty, `.` and `..` components resolved away.
    fn canonical(&self) -> String {
        let (body, shown) = (self.body(), self.to_string());
        let (full, partial) = match (self, body.rsplit_once('/')) {
            (PathPattern::Prefix(_), Some((full, partial))) => (full, Some(partial)),
            _ => (body, None),
        };
        let mut kept: Vec<&str> = Vec::new();
        for part in full.split('/') {
            match part {
                "" | "." => {}
                ".." => _ = kept.pop(),
                _ => kept.push(part),
            }
        }
        let canonical: String = kept.into_iter().chain(partial).map(|part| format!("/{part}")).collect();
        let suffix = shown.get(body.len()..).unwrap_or("");
        if canonical.is_empty() && suffix.is_empty() {
            "/".to_owned()
        } else {
            canonical + suffix
        }
    }

    /// Whether `path` matches. A path that is not absolute matches nothing.
    pub fn matches(&self, path: &str) -> bool {
        if !path.starts_with('/') {
            return false;
        }
        match self {
            PathPattern::Exact(x) => path == x,
            PathPattern::Children(d) => path
                .strip_prefix(d.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|child| !child.is_empty() && !child.contains('/')),
            PathPattern::Recursive(d) => {
                path.strip_prefix(d.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
        }
    }

    /// Whether `path` or some path below it matches: what a pattern means
    /// for an event on a directory (renamed, moved or mounted), which
    /// stands for everything in it. A path that is not absolute matches
    /// nothing.
    pub fn matches_at_or_below(&self, path: &str) -> bool {
        if !path.starts_with('/') {
            return false;
        }
        if self.matches(path) {
            return true;
        }
        // The directory as the patterns store directories: the root is ``.
        let dir = if path == "/" { "" } else { path };
        let at_or_below = |x: &str| x == dir || x.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'));
        match self {
            PathPattern::Exact(x) => at_or_below(x),
            PathPattern::Children(d) | PathPattern::Recursive(d) => at_or_below(d),
            // A path below `dir` starts with `p` when `p` goes on below
            // `dir` (`p` itself, or `p` and more, is such a path), or when
            // `dir/` starts with `p`.
            PathPattern::Prefix(p) => {
                p.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
                    || format!("{dir}/").starts_with(p.as_str())
            }
        }
    }

    /// Sound subsumption: true only if every path `other` matches, `self`
    /// matches too. Exact for parsed patterns.
    pub fn covers(&self, other: &PathPattern) -> bool {
        use PathPattern::{Children, Exact, Prefix, Recursive};
        if self == other || self.matches_everything() {
            return true;
        }
        match (self, other) {
            (Exact(_), _) => false,
            (_, Exact(x)) => self.matches(x),
            (Children(_), _) => false,
            // Every `e/c` starts with `d/` exactly when `e/` does.
            (Recursive(d), Children(e)) => format!("{e}/").starts_with(&format!("{d}/")),
            (Recursive(d), Recursive(e)) => e.starts_with(&format!("{d}/")),
            (Recursive(d), Prefix(q)) => q.starts_with(&format!("{d}/")),
            (Prefix(p), Children(c)) => format!("{c}/").starts_with(p.as_str()),
            (Prefix(p), Recursive(c)) => !c.is_empty() && c.starts_with(p.as_str()),
            (Prefix(p), Prefix(q)) => q.starts_with(p.as_str()),
        }
    }

    /// Whether it matches every path: `/**`, and the prefixes `/` and ``.
    pub fn matches_everything(&self) -> bool {
        match self {
            PathPattern::Recursive(d) => d.is_empty(),
            PathPattern::Prefix(p) => p.is_empty() || p == "/",
            PathPattern::Exact(_) | PathPattern::Children(_) => false,
        }
    }
}

impl fmt::Display for PathPattern {
    /// As the user writes it: `/usr/bin/echo`, `/usr/sbin/*`, `/**`, `/usr/sbin*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPattern::Exact(x) => f.write_str(x),
            PathPattern::Children(d) => write!(f, "{d}/*"),
            PathPattern::Recursive(d) => write!(f, "{d}/**"),
            PathPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// Which character rules a text value obeys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextSyntax {
    /// `containerImageFullName`: `registry[:port]/repository/path`, no tag or digest.
    ImageFullName,
    /// `containerImageName`: a repository path, no registry, tag or digest.
    ImageName,
    /// `containerImageTag`: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    ImageTag,
    /// `kubernetesPodName`: a DNS subdomain.
    PodName,
    /// `kubernetesNamespace`: a DNS label.
    Namespace,
    /// `kubernetesClusterId` / `kubernetesClusterName`: any text without control characters.
    Cluster,
    /// `processName`: a file name.
    ProcessName,
    /// `processUserName`: a user name as `/etc/passwd` holds it (no `:`,
    /// no control character).
    UserName,
    /// `processUserId`: a user id in decimal, `0` to `4294967294`; no
    /// wildcard (the runtime must know every id a policy names).
    UserId,
}

impl TextSyntax {
    fn noun(self) -> &'static str {
        match self {
            TextSyntax::ImageFullName | TextSyntax::ImageName => "an image name",
            TextSyntax::ImageTag => "an image tag",
            TextSyntax::PodName => "a pod name",
            TextSyntax::Namespace => "a namespace",
            TextSyntax::Cluster => "a cluster id or name",
            TextSyntax::ProcessName => "a process name",
            TextSyntax::UserName => "a user name",
            TextSyntax::UserId => "a user id",
        }
    }
}

/// A pattern for a plain text value (image names, tags, namespaces, pod
/// names, cluster ids and names, process names).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum TextPattern {
    /// That value only.
    Exact(String),
    /// `text*`: every value starting with the text; `*` alone is `Prefix("")`.
    Prefix(String),
}

impl TextPattern {
    /// Parses one value obeying `syntax`, with an optional trailing `*`.
    pub fn parse(text: &str, syntax: TextSyntax) -> Result<TextPattern, PatternError> {
        if text.is_empty() {
            return Err(err(0..0, format!("empty value: expected {}", syntax.noun())));
        }
        let (body, pattern) = split_star(text, 0, syntax.noun())?;
        let open = matches!(pattern, TextPattern::Prefix(_));
        match syntax {
            TextSyntax::ImageFullName => check_image_full_name(body, open)?,
            TextSyntax::ImageName => check_image_name(body, open)?,
            TextSyntax::ImageTag => check_image_tag(body)?,
            TextSyntax::PodName => check_dns(body, 0, open, "a pod name", 253, true)?,
            TextSyntax::Namespace => check_dns(body, 0, open, "a namespace", 63, false)?,
            TextSyntax::Cluster => {
                check_chars(body, 0, "a cluster id or name", "no control characters", None, |c| !c.is_control())?
            }
            TextSyntax::ProcessName => match body.find('/') {
                Some(i) => {
                    return Err(err(i..i + 1, "a process name is a file name, not a path")
                        .help("use `processExecutable` for a path"))
                }
                None => check_chars(body, 0, "a process name", "no NUL character", None, |c| c != '\0')?,
            },
            TextSyntax::UserName => {
                check_chars(body, 0, "a user name", "no `:` and no control character", None, |c| {
                    c != ':' && !c.is_control()
                })?
            }
            TextSyntax::UserId => check_user_id(body, open)?,
        }
        Ok(pattern)
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            TextPattern::Exact(x) => value == x,
            TextPattern::Prefix(p) => value.starts_with(p.as_str()),
        }
    }

    /// Whether every value `other` matches, `self` matches too (exact).
    pub fn covers(&self, other: &TextPattern) -> bool {
        match (self, other) {
            (TextPattern::Exact(x), TextPattern::Exact(y)) => x == y,
            (TextPattern::Exact(_), TextPattern::Prefix(_)) => false,
            (TextPattern::Prefix(p), TextPattern::Exact(q) | TextPattern::Prefix(q)) => q.starts_with(p.as_str()),
        }
    }
}

impl fmt::Display for TextPattern {
    /// As the user writes it: `nginx`, `web-*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextPattern::Exact(x) => f.write_str(x),
            TextPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// The largest user id: `(uid_t)-1` is the kernel's "no id".
pub const MAX_USER_ID: u32 = u32::MAX - 1;

/// A user id: decimal digits, at most [`MAX_USER_ID`], no wildcard.
fn check_user_id(body: &str, open: bool) -> Result<(), PatternError> {
    if open {
        return Err(err(body.len()..body.len() + 1, "a user id takes no wildcard")
            .help("list the ids; `processUserName` takes a trailing `*`"));
    }
    check_chars(body, 0, "a user id", "decimal digits only", None, |c| c.is_ascii_digit())?;
    match body.parse::<u64>() {
        Ok(id) if id <= u64::from(MAX_USER_ID) => Ok(()),
        _ => Err(err(0..body.len(), format!("a user id is at most {MAX_USER_ID}"))),
    }
}

/// Rejects the first character of `text` (at `base` in the value) that `ok`
/// refuses. Uppercase letters get their own message when `lower` is the
/// lowercase form to suggest. `what` has its article: `a pod name`.
fn check_chars(
    text: &str,
    base: usize,
    what: &str,
    has: &str,
    lower: Option<String>,
    ok: impl Fn(char) -> bool,
) -> Result<(), PatternError> {
    let Some((i, c)) = text.char_indices().find(|&(_, c)| !ok(c)) else { return Ok(()) };
    let at = char_at(base + i, c);
    Err(match lower {
        Some(lower) if c.is_ascii_uppercase() => err(at, format!("uppercase {} in {what}", show(c))).help(lower),
        _ => err(at, format!("{} is not allowed in {what}", show(c))).help(format!("{what} has {has}")),
    })
}

/// Rejects a `text` (at `base`) longer than `max` bytes.
fn check_len(text: &str, base: usize, max: usize, what: &str) -> Result<(), PatternError> {
    if text.len() <= max {
        return Ok(());
    }
    Err(err(base + max..base + text.len(), format!("{what} is at most {max} bytes, this one has {}", text.len())))
}

/// Checks that `text` starts (and, unless `open_end`, ends) with an ASCII
/// letter or digit.
fn check_ends(text: &str, base: usize, open_end: bool, what: &str) -> Result<(), PatternError> {
    if let Some(c) = text.chars().next().filter(|c| !c.is_ascii_alphanumeric()) {
        return Err(err(char_at(base, c), format!("{what} starts with a letter or digit, not {}", show(c))));
    }
    match text.char_indices().last().filter(|(_, c)| !open_end && !c.is_ascii_alphanumeric()) {
        Some((i, c)) => Err(err(char_at(base + i, c), format!("{what} ends with a letter or digit, not {}", show(c)))),
        None => Ok(()),
    }
}

/// Checks an ASCII `text` whose `.`-separated parts each start and end with a
/// letter or digit (the last part may end anywhere when `open_end`).
fn check_labels(text: &str, base: usize, open_end: bool, what: &str) -> Result<(), PatternError> {
    check_ends(text, base, open_end, what)?;
    let alnum = |i: usize| text.as_bytes().get(i).is_some_and(u8::is_ascii_alphanumeric);
    for (i, _) in text.match_indices('.') {
        let bad = match (alnum(i.saturating_sub(1)), i + 1 < text.len() && !alnum(i + 1)) {
            (false, _) => i.saturating_sub(1)..i + 1,
            (true, true) => i..i + 2,
            (true, false) => continue,
        };
        let pair = text.get(bad.clone()).unwrap_or(".");
        let message = format!("`{pair}` in {what}: a `.` must sit between letters or digits");
        return Err(err(base + bad.start..base + bad.end, message));
    }
    Ok(())
}

/// Checks a Kubernetes DNS subdomain (`dots`) or DNS label (no dots).
fn check_dns(text: &str, base: usize, open_end: bool, what: &str, max: usize, dots: bool) -> Result<(), PatternError> {
    let star = if open_end { "*" } else { "" };
    let lower = format!("Kubernetes names are lowercase: write `{}{star}`", text.to_ascii_lowercase());
    let has = if dots { "lowercase letters, digits, `-` and `.`" } else { "lowercase letters, digits and `-`" };
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    check_chars(text, base, what, has, Some(lower), ok)?;
    check_len(text, base, max, what)?;
    check_labels(text, base, open_end, what)
}

/// Checks `registry[:port]` (a prefix of it when `open_end`).
fn check_registry(text: &str, open_end: bool) -> Result<(), PatternError> {
    if let Some(inner) = text.strip_prefix('[') {
        return check_ipv6_registry(inner, open_end);
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err(err(0..0, "missing registry host").help("write the registry first, as in `docker.io/nginx`"));
    }
    let has = "letters, digits, `.` and `-`, and an optional `:port`";
    check_chars(host, 0, "a registry host", has, None, |c| c.is_ascii_alphanumeric() || c == '.' || c == '-')?;
    check_labels(host, 0, open_end && port.is_none(), "a registry host")?;
    let base = host.len() + 1;
    match port {
        Some("") if !open_end => Err(err(base..base, "missing port after `:`")),
        Some(port) => check_chars(port, base, "a registry port", "digits", None, |c| c.is_ascii_digit()),
        None => Ok(()),
    }
}

/// Checks `[ipv6]` and its optional `:port`, the `[` already read (`inner`
/// starts at byte 1 of the value): hexadecimal digits and `:` between the
/// brackets, as Docker's reference grammar and the original's editor allow.
fn check_ipv6_registry(inner: &str, open_end: bool) -> Result<(), PatternError> {
    let hex = |c: char| c.is_ascii_hexdigit() || c == ':';
    let has = "hexadecimal digits and `:` between `[` and `]`";
    let Some(close) = inner.find(']') else {
        check_chars(inner, 1, "an IPv6 registry address", has, None, hex)?;
        return if open_end {
            Ok(())
        } else {
            Err(err(1 + inner.len()..1 + inner.len(), "missing `]` after an IPv6 registry address"))
        };
    };
    let address = inner.get(..close).unwrap_or("");
    if address.is_empty() {
        return Err(err(1..1, "empty IPv6 registry address between `[` and `]`"));
    }
    check_chars(address, 1, "an IPv6 registry address", has, None, hex)?;
    let base = close + 2;
    match inner.get(close + 1..).unwrap_or("") {
        "" => Ok(()),
        rest => match rest.strip_prefix(':') {
            Some("") if !open_end => Err(err(base + 1..base + 1, "missing port after `:`")),
            Some(port) => check_chars(port, base + 1, "a registry port", "digits", None, |c| c.is_ascii_digit()),
            None => {
                let c = rest.chars().next().unwrap_or(' ');
                Err(err(char_at(base, c), "only a `:port` may follow an IPv6 registry address"))
            }
        },
    }
}

/// Checks a repository path: `/`-separated components of lowercase letters
/// and digits joined by `.`, `_`, `__` or runs of `-`.
fn check_repo_path(text: &str, base: usize, open_end: bool) -> Result<(), PatternError> {
    let lower = format!("image names are lowercase: write `{}`", text.to_ascii_lowercase());
    let has = "lowercase letters, digits, `/` and the separators `.`, `_`, `__` and `-`";
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/');
    check_chars(text, base, "an image name", has, Some(lower), ok)?;
    let parts: Vec<&str> = text.split('/').collect();
    let mut off = base;
    for (k, part) in parts.iter().enumerate() {
        let open = open_end && k + 1 == parts.len();
        if part.is_empty() && !open {
            let at = if k + 1 < parts.len() { off..off + 1 } else { off.saturating_sub(1)..off };
            return Err(err(at, "empty component in an image name: a `/` must sit between names"));
        }
        // The runs of separators: ASCII, as checked above.
        let mut runs: Vec<Range<usize>> = Vec::new();
        for (i, _) in part.char_indices().filter(|(_, c)| !c.is_ascii_alphanumeric()) {
            match runs.last_mut() {
                Some(run) if run.end == i => run.end = i + 1,
                _ => runs.push(i..i + 1),
            }
        }
        for run in runs {
            let sep = part.get(run.clone()).unwrap_or("");
            let at = off + run.start..off + run.end;
            if run.start == 0 || (run.end == part.len() && !open) {
                let end = if run.start == 0 { "starts" } else { "ends" };
                return Err(err(at, format!("an image name component {end} with a letter or digit, not `{sep}`")));
            }
            if !(matches!(sep, "." | "_" | "__") || sep.chars().all(|c| c == '-')) {
                return Err(err(at, format!("`{sep}` is not a separator in an image name"))
                    .help("separate words with `.`, `_`, `__` or `-`"));
            }
        }
        off += part.len() + 1;
    }
    Ok(())
}

fn digest_error(text: &str, i: usize) -> PatternError {
    err(i..text.len(), "a digest is not part of the image name")
        .help("remove the digest: d4c matches images by name and `containerImageTag`, which does not match digests")
}

fn tag_error(text: &str, colon: usize) -> PatternError {
    let tag = text.get(colon..).unwrap_or(":");
    err(colon..text.len(), format!("a tag is not part of the image name: `{tag}`"))
        .help("put the tag in `containerImageTag`")
}

fn check_image_full_name(text: &str, open_end: bool) -> Result<(), PatternError> {
    if let Some(i) = text.find('@') {
        return Err(digest_error(text, i));
    }
    let Some(slash) = text.find('/') else {
        if open_end {
            return check_registry(text, true);
        }
        return Err(err(0..text.len(), "a full image name includes the registry, e.g. `docker.io/nginx`")
            .help("use `containerImageName` for a bare name"));
    };
    let last_slash = text.rfind('/').unwrap_or(slash);
    if let Some(colon) = text.get(last_slash..).and_then(|tail| tail.find(':')) {
        return Err(tag_error(text, last_slash + colon));
    }
    check_registry(text.get(..slash).unwrap_or(""), false)?;
    check_repo_path(text.get(slash + 1..).unwrap_or(""), slash + 1, open_end)
}

fn check_image_name(text: &str, open_end: bool) -> Result<(), PatternError> {
    if let Some(i) = text.find('@') {
        return Err(digest_error(text, i));
    }
    if let Some(colon) = text.find(':') {
        return Err(match text.get(colon..).and_then(|tail| tail.find('/')) {
            Some(slash) => err(0..colon + slash, "a registry is not part of `containerImageName`")
                .help("use `containerImageFullName` for a name with its registry"),
            None => tag_error(text, colon),
        });
    }
    check_repo_path(text, 0, open_end)
}

fn check_image_tag(text: &str) -> Result<(), PatternError> {
    if let Some(c) = text.chars().next().filter(|&c| c == '.' || c == '-') {
        return Err(err(0..1, format!("an image tag starts with a letter, digit or `_`, not {}", show(c))));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    check_chars(text, 0, "an image tag", "letters, digits, `_`, `.` and `-`", None, ok)?;
    check_len(text, 0, 128, "an image tag")
}

const LABEL_HELP: &str = "write `key:value`; `key:` matches the empty value and `key:*` any value";

/// A `kubernetesPodLabel` pattern `key:value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct LabelPattern {
    /// The label key, with its optional `prefix/`.
    pub key: String,
    /// The value: `key:` is `Exact("")`, `key:*` is `Prefix("")` (any value).
    pub value: TextPattern,
}

impl LabelPattern {
    /// Parses `key:value`, split at the first `:`.
    pub fn parse(text: &str) -> Result<LabelPattern, PatternError> {
        if text.is_empty() {
            return Err(err(0..0, "empty pod label").help(LABEL_HELP));
        }
        let Some((key, _)) = text.split_once(':') else {
            return Err(err(text.len()..text.len(), format!("missing `:` in pod label `{text}`")).help(LABEL_HELP));
        };
        if let Some(i) = key.find('*') {
            return Err(err(star_run(key, i), "wildcards are allowed in label values only"));
        }
        check_label_key(key)?;
        let (body, value) = split_star(text, key.len() + 1, "a label value")?;
        check_label_name(body, key.len() + 1, matches!(value, TextPattern::Prefix(_)), "a label value")?;
        Ok(LabelPattern { key: key.to_owned(), value })
    }

    /// Whether a pod whose labels are `labels` (key, value) matches.
    pub fn matches<'a>(&self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        labels.into_iter().any(|(k, v)| k == self.key && self.value.matches(v))
    }

    /// Whether every pod `other` matches, `self` matches too (exact).
    pub fn covers(&self, other: &LabelPattern) -> bool {
        self.key == other.key && self.value.covers(&other.value)
    }
}

impl fmt::Display for LabelPattern {
    /// As the user writes it: `app:web*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.key, self.value)
    }
}

/// Checks `[prefix/]name`: a DNS subdomain prefix and a 1-63 character name.
fn check_label_key(key: &str) -> Result<(), PatternError> {
    if key.is_empty() {
        return Err(err(0..0, "missing label key before `:`").help(LABEL_HELP));
    }
    let (name, base) = match key.split_once('/') {
        Some(("", _)) => return Err(err(0..0, "missing label key prefix before `/`")),
        Some((prefix, name)) => {
            check_dns(prefix, 0, false, "a label key prefix", 253, true)?;
            (name, prefix.len() + 1)
        }
        None => (key, 0),
    };
    if let Some(i) = name.find('/') {
        return Err(err(base + i..base + i + 1, "a label key has at most one `/`, after its prefix"));
    }
    if name.is_empty() {
        return Err(err(base..base, "missing label name after `/`"));
    }
    check_label_name(name, base, false, "a label name")
}

/// Checks a label name or value: at most 63 of `[A-Za-z0-9._-]`, starting
/// and ending with a letter or digit when not empty.
fn check_label_name(text: &str, base: usize, open_end: bool, what: &str) -> Result<(), PatternError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    check_chars(text, base, what, "letters, digits, `.`, `_` and `-`", None, ok)?;
    check_len(text, base, 63, what)?;
    check_ends(text, base, open_end, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path(text: &str) -> PathPattern {
        PathPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn label(text: &str) -> LabelPattern {
        LabelPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    /// Asserts that `result` is an error at `at` whose message contains
    /// `fragment` and whose help contains `help` (when not empty).
    fn assert_err<T: fmt::Debug>(result: Result<T, PatternError>, at: Range<usize>, fragment: &str, help: &str) {
        let err = result.expect_err("expected an error");
        assert_eq!(err.at, at, "{err:?}");
        assert!(err.message.contains(fragment), "{err:?} lacks {fragment:?}");
        assert!(help.is_empty() || err.help.as_deref().is_some_and(|h| h.contains(help)), "{err:?} lacks {help:?}");
    }

    #[test]
    fn a_directory_matches_what_any_path_at_or_below_it_matches() {
        for (pattern, dir, want) in [
            ("/usr/bin/**", "/usr/bin/d", true),
            ("/usr/bin/**", "/usr", true),
            ("/usr/bin/**", "/usr/lib", false),
            ("/usr/bin/*", "/usr/bin/d", true),
            ("/usr/bin/*", "/usr", true),
            ("/usr/bin/*", "/usr/bin/d/e", false),
            ("/opt/app/bin/*", "/opt/app", true),
            ("/opt/app/bin/*", "/opt/ap", false),
            ("/etc/passwd", "/etc", true),
            ("/etc/passwd", "/etc/passwd", true),
            ("/etc/passwd", "/et", false),
            ("/etc/passwd", "/etc/passwd/x", false),
            ("/usr/sbin*", "/usr", true),
            ("/usr/sbin*", "/usr/sbin2", true),
            ("/usr/sbin*", "/usr/sbi", false),
            ("/usr/sbin*", "/var", false),
            ("/a*", "/", true),
            ("/etc/passwd", "/", true),
            ("/*", "/", true),
            ("/*", "/x/y", false),
            ("/**", "/x/y", true),
        ] {
            assert_eq!(path(pattern).matches_at_or_below(dir), want, "{pattern} at or below {dir}");
        }
        assert!(!path("/**").matches_at_or_below("relative"));
    }

    proptest! {
        /// `matches_at_or_below` agrees with a search of the paths at and
        /// below the directory, over an alphabet that holds the pattern's
        /// own components and their prefixes.
        #[test]
        fn at_or_below_agrees_with_a_search(
            pattern in "/[ab]{1,2}(/[ab]{1,2}){0,2}(/\\*|/\\*\\*|\\*)?",
            dir in "/|/[ab]{1,2}(/[ab]{1,2}){0,2}",
        ) {
            let Ok(pattern) = PathPattern::parse(&pattern) else { return Ok(()) };
            let names = ["a", "b", "aa", "ab", "ba", "bb", "c"];
            let mut found = pattern.matches(&dir);
            let mut level = vec![dir.trim_end_matches('/').to_string()];
            for _ in 0..4 {
                level = level.iter().flat_map(|p| names.iter().map(move |n| format!("{p}/{n}"))).collect();
                found |= level.iter().any(|p| pattern.matches(p));
            }
            prop_assert_eq!(pattern.matches_at_or_below(&dir), found, "{} at or below {}", pattern, dir);
        }
    }

    #[test]
    fn path_kinds_and_round_trip() {
        use PathPattern::*;
        for (text, want) in [
            ("/", Exact("/".into())),
            ("/*", Children(String::new())),
            ("/**", Recursive(String::new())),
            ("/usr/bin/echo", Exact("/usr/bin/echo".into())),
            ("/usr/sbin/*", Children("/usr/sbin".into())),
            ("/usr/local/**", Recursive("/usr/local".into())),
            ("/usr/sbin*", Prefix("/usr/sbin".into())),
            ("/a/.b", Exact("/a/.b".into())),
            ("/a/..*", Prefix("/a/..".into())),
            ("/a/.*", Prefix("/a/.".into())),
            ("/a b/ü", Exact("/a b/ü".into())),
        ] {
            assert_eq!(path(text), want, "{text}");
            assert_eq!(want.to_string(), text);
        }
    }

    #[test]
    fn path_errors() {
        let wildcard = PATH_WILDCARD_HELP;
        for (text, at, fragment, help) in [
            ("", 0..0, "empty path", ""),
            ("usr/bin", 0..1, "not an absolute path", "write `/usr/bin`"),
            ("ü/x", 0..2, "not an absolute path", ""),
            ("**", 0..1, "not an absolute path", ""),
            ("/a\0b", 2..3, "NUL", ""),
            ("/usr/*/bin", 5..6, "misplaced wildcard `*`", wildcard),
            ("/a/**/b", 3..5, "misplaced wildcard `**`", wildcard),
            ("/a/***", 3..6, "misplaced wildcard", wildcard),
            ("/a/b**", 4..6, "misplaced wildcard", wildcard),
            ("/a*b", 2..3, "misplaced wildcard", wildcard),
            ("/usr//bin", 4..6, "`//`", "`/usr/bin`"),
            ("//", 0..2, "`//`", "`/`"),
            ("/usr//*", 4..6, "`//`", "`/usr/*`"),
            ("/usr/", 4..5, "trailing `/`", "`/usr`, or `/usr/**`"),
            ("/usr/./bin", 5..6, "without `.` components", "`/usr/bin`"),
            ("/usr/../bin", 5..7, "without `..`", "`/bin`"),
            ("/a/b/..", 5..7, "without `..`", "`/a`"),
            ("/a/../*", 3..5, "without `..`", "`/*`"),
            ("/../**", 1..3, "without `..`", "`/**`"),
            ("/a/./b*", 3..4, "`.`", "`/a/b*`"),
        ] {
            assert_err(PathPattern::parse(text), at, fragment, help);
        }
    }

    #[test]
    fn path_matching() {
        // pattern, paths it matches, paths it does not ("-" is the empty path).
        for (pattern, yes, no) in [
            ("/", "/", "/a -"),
            ("/*", "/a /ab", "/ /a/b a"),
            ("/**", "/ /a /a/b/c", "- a"),
            ("/x/**", "/x /x/y /x/y/z", "/ /xy /y/x"),
            ("/x/*", "/x/y", "/x /x/y/z /xy"),
            ("/usr/sbin*", "/usr/sbin /usr/sbin/x /usr/sbinx", "/usr/sbi /usr"),
            ("/usr/bin/echo", "/usr/bin/echo", "/usr/bin/echo2 /usr/bin"),
        ] {
            let p = path(pattern);
            let paths = |s: &'static str| s.split(' ').map(|t| if t == "-" { "" } else { t });
            paths(yes).for_each(|y| assert!(p.matches(y), "{pattern} should match {y}"));
            paths(no).for_each(|n| assert!(!p.matches(n), "{pattern} should not match {n}"));
        }
        let everything = |t: &str| path(t).matches_everything();
        assert!(everything("/**") && PathPattern::Prefix("/".into()).matches_everything());
        assert!(!everything("/*") && !everything("/") && !everything("/a*") && !everything("/a/**"));
    }

    #[test]
    fn path_covers() {
        // pattern, patterns it covers, patterns it does not.
        for (a, yes, no) in [
            ("/usr/**", "/usr /usr/x /usr/* /usr/a/* /usr/a/** /usr/a* /usr/**", "/usr* /usrx /* /usrx/**"),
            ("/**", "/ /* /** /a* /a/b/** /a/b", ""),
            ("/usr*", "/usr/** /usr/* /usrx* /usr /usrx/a/*", "/us /us* /*"),
            ("/us*", "/usr/** /us/*", "/u/** /**"),
            ("/usr/*", "/usr/x /usr/*", "/usr/x/y /usr /usr/x* /usr/**"),
            ("/*", "/a /*", "/ /a/b /a/* /**"),
            ("/usr", "/usr", "/usr* /usr/** /usr/x"),
        ] {
            let a = path(a);
            yes.split_whitespace().for_each(|b| assert!(a.covers(&path(b)), "{a} covers {b}"));
            no.split_whitespace().for_each(|b| assert!(!a.covers(&path(b)), "{a} does not cover {b}"));
        }
        let (root, empty) = (PathPattern::Prefix("/".into()), PathPattern::Prefix("".into()));
        assert!(root.covers(&path("/**")) && empty.covers(&path("/**")) && path("/**").covers(&empty));
    }

    /// Every pattern over a small alphabet against every path: `covers` is sound.
    #[test]
    fn path_covers_sound_exhaustively() {
        let bodies = ["", "/a", "/b", "/ab", "/a/a", "/a/b", "/a/ab", "/ab/a", "/b/a/b", "/a/a/ab", "/a/b/a"];
        let mut patterns = vec![PathPattern::Exact("/".into())];
        for b in bodies {
            use PathPattern::{Children, Exact, Prefix, Recursive};
            patterns.extend([Children(b.into()), Recursive(b.into()), Prefix(b.into()), Prefix(format!("{b}/"))]);
            patterns.extend([Prefix(format!("{b}/a")), Exact(b.into())].into_iter().filter(|_| !b.is_empty()));
        }
        let paths: Vec<String> =
            bodies.iter().flat_map(|b| [format!("{b}/"), format!("{b}/a/b"), b.to_string()]).collect();
        for a in &patterns {
            for b in patterns.iter().filter(|b| a.covers(b)) {
                for p in &paths {
                    assert!(!b.matches(p) || a.matches(p), "{a:?} covers {b:?} but not {p}");
                }
            }
        }
    }

    #[test]
    fn text_valid() {
        use TextSyntax::*;
        for (syntax, texts) in [
            (ImageFullName, "docker.io/nginx [::1]:5000/app [fe80::1]/x [::1* localhost:5000/a/b Reg.Example-1.com/x__y.z--w docker* docker.io:50* docker.io/* docker.io/x-*"),
            (ImageName, "nginx library/nginx elastic-a* *"),
            (ImageTag, "latest _1.25.3-alpine v1*"),
            (PodName, "web-0 web.a-b.c web-* web.* *"),
            (Namespace, "kube-system kube-*"),
            (ProcessName, "bash kworker* *"),
        ] {
            for text in texts.split(' ') {
                let p = TextPattern::parse(text, syntax).unwrap_or_else(|e| panic!("{text}: {e:?}"));
                assert_eq!(p.to_string(), text);
            }
        }
        assert_eq!(TextPattern::parse("Prod Cluster 1", Cluster), Ok(TextPattern::Exact("Prod Cluster 1".into())));
        assert_eq!(TextPattern::parse("*", PodName), Ok(TextPattern::Prefix(String::new())));
    }

    #[test]
    fn text_errors() {
        use TextSyntax::*;
        let (tag, digest) = ("put the tag in `containerImageTag`", "`containerImageTag`, which does not match digests");
        for (text, syntax, at, fragment, help) in [
            ("", Cluster, 0..0, "empty value: expected a cluster", ""),
            ("ng*nx", ImageName, 2..3, "misplaced wildcard", "as in `ng*`"),
            ("**", ImageTag, 0..2, "misplaced wildcard", ""),
            ("nginx", ImageFullName, 0..5, "includes the registry, e.g. `docker.io/nginx`", "use `containerImageName`"),
            ("docker.io/nginx:1.25", ImageFullName, 15..20, "`:1.25`", tag),
            ("docker.io/nginx@sha256:ab", ImageFullName, 15..25, "digest", digest),
            ("docker.io/Nginx", ImageFullName, 10..11, "uppercase", "`nginx`"),
            ("docker.io/ng___inx", ImageFullName, 12..15, "not a separator", ""),
            ("docker.io/ng._inx", ImageFullName, 12..14, "not a separator", ""),
            ("docker.io/-x", ImageFullName, 10..11, "starts with", ""),
            ("docker.io/x-", ImageFullName, 11..12, "ends with", ""),
            ("docker.io/", ImageFullName, 9..10, "empty component", ""),
            ("docker.io/a//b", ImageFullName, 12..13, "empty component", ""),
            ("/nginx", ImageFullName, 0..0, "missing registry", ""),
            ("docker_io/x", ImageFullName, 6..7, "registry host", ""),
            ("docker..io/x", ImageFullName, 6..8, "`..`", ""),
            ("docker.io:/x", ImageFullName, 10..10, "missing port", ""),
            ("docker.io:50a0/x", ImageFullName, 12..13, "registry port", ""),
            ("[::g]/x", ImageFullName, 3..4, "IPv6 registry address", ""),
            ("[]/x", ImageFullName, 1..1, "empty IPv6", ""),
            ("[::1/x", ImageFullName, 4..4, "missing `]`", ""),
            ("[::1]x/y", ImageFullName, 5..6, "only a `:port`", ""),
            ("[::1]:/y", ImageFullName, 6..6, "missing port", ""),
            ("nginx:latest", ImageName, 5..12, "tag is not part", tag),
            ("nginx@sha256:x", ImageName, 5..14, "digest", digest),
            ("Nginx", ImageName, 0..1, "uppercase", "lowercase"),
            ("localhost:5000/nginx", ImageName, 0..14, "registry", "`containerImageFullName`"),
            ("ngin x", ImageName, 4..5, "U+0020", ""),
            (".x", ImageTag, 0..1, "starts with", ""),
            ("a/b", ImageTag, 1..2, "not allowed", ""),
            ("My-Pod*", PodName, 0..1, "uppercase", "Kubernetes names are lowercase: write `my-pod*`"),
            ("-web", PodName, 0..1, "starts with", ""),
            ("web-", PodName, 3..4, "ends with", ""),
            ("a..b", PodName, 1..3, "`..`", ""),
            ("a.-b", PodName, 1..3, "`.-`", ""),
            ("a-.b", PodName, 1..3, "`-.`", ""),
            ("a_b", PodName, 1..2, "not allowed", ""),
            ("a.b", Namespace, 1..2, "not allowed", ""),
            ("a\tb", Cluster, 1..2, "U+0009", ""),
            ("/bin/bash", ProcessName, 0..1, "file name", "use `processExecutable`"),
            ("a\0", ProcessName, 1..2, "U+0000", ""),
        ] {
            assert_err(TextPattern::parse(text, syntax), at, fragment, help);
        }
        assert_err(TextPattern::parse(&"a".repeat(129), ImageTag), 128..129, "at most 128 bytes", "");
        assert_err(TextPattern::parse(&"a".repeat(254), PodName), 253..254, "at most 253", "");
        assert_err(TextPattern::parse(&"a".repeat(64), Namespace), 63..64, "at most 63", "");
    }

    #[test]
    fn text_matching_and_covers() {
        let p = |t: &str| TextPattern::parse(t, TextSyntax::ImageName).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(p("nginx").matches("nginx") && !p("nginx").matches("nginx2") && p("*").matches(""));
        assert!(p("ng*").matches("ng") && p("ng*").matches("nginx") && !p("ng*").matches("n"));
        assert!(p("ng*").covers(&p("nginx")) && p("ng*").covers(&p("ngi*")) && !p("ngi*").covers(&p("ng*")));
        assert!(p("nginx").covers(&p("nginx")) && !p("nginx").covers(&p("nginx*")) && p("*").covers(&p("a*")));
    }

    #[test]
    fn labels() {
        for text in ["app:web", "app:", "app:*", "example.com/app:web*", "a.b_c-d:V.1_x-2", "app:x-*"] {
            assert_eq!(label(text).to_string(), text);
        }
        assert_eq!(label("app:").value, TextPattern::Exact(String::new()));
        assert_eq!(label("app:*").value, TextPattern::Prefix(String::new()));
        assert_eq!(label("k8s.io/app:web").key, "k8s.io/app");
        for (text, at, fragment, help) in [
            ("", 0..0, "empty pod label", LABEL_HELP),
            ("app", 3..3, "missing `:` in pod label `app`", LABEL_HELP),
            ("app*:x", 3..4, "label values only", ""),
            (":x", 0..0, "missing label key", ""),
            ("Example.com/app:x", 0..1, "uppercase", "`example.com`"),
            ("/app:x", 0..0, "missing label key prefix", ""),
            ("a/b/c:x", 3..4, "at most one `/`", ""),
            ("a/:x", 2..2, "missing label name", ""),
            ("-app:x", 0..1, "starts with", ""),
            ("app:-x", 4..5, "starts with", ""),
            ("app:x-", 5..6, "ends with", ""),
            ("app:a:b", 5..6, "not allowed", ""),
            ("app:we*b", 6..7, "misplaced wildcard", "as in `app:we*`"),
        ] {
            assert_err(LabelPattern::parse(text), at, fragment, help);
        }
        assert_err(LabelPattern::parse(&format!("{}:x", "a".repeat(64))), 63..64, "at most 63", "");
        assert_err(LabelPattern::parse(&format!("a:{}", "a".repeat(64))), 65..66, "at most 63", "");

        let pod = [("app", "web-1"), ("tier", "")];
        assert!(label("app:web*").matches(pod) && label("app:web-1").matches(pod) && !label("app:web").matches(pod));
        assert!(label("tier:").matches(pod) && label("tier:*").matches(pod) && !label("zone:*").matches(pod));
        assert!(label("app:*").covers(&label("app:web")) && !label("app:*").covers(&label("tier:web")));
        assert!(!label("app:web").covers(&label("app:web*")));
    }

    fn comps(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab"]), 0..=max)
            .prop_map(|c| c.iter().map(|c| format!("/{c}")).collect())
    }

    fn path_pattern() -> impl Strategy<Value = PathPattern> {
        (comps(4), 0..5usize, 0..3usize).prop_map(|(body, kind, cut)| match kind {
            0 => PathPattern::Exact(if body.is_empty() { "/".into() } else { body }),
            1 => PathPattern::Children(body),
            2 => PathPattern::Recursive(body),
            3 => PathPattern::Prefix(body + if cut == 0 { "/" } else { "" }),
            // A prefix that ends inside a component, such as `/a/a` from `/a/ab`.
            _ => PathPattern::Prefix(body.get(..body.len().saturating_sub(cut)).unwrap_or("").to_owned()),
        })
    }

    fn text_pattern() -> impl Strategy<Value = TextPattern> {
        ("[ab]{0,4}", any::<bool>())
            .prop_map(|(t, open)| if open { TextPattern::Prefix(t) } else { TextPattern::Exact(t) })
    }

    fn label_pattern() -> impl Strategy<Value = LabelPattern> {
        ("[kj]", text_pattern()).prop_map(|(key, value)| LabelPattern { key, value })
    }

    /// A parse result is a round trip or an error on character boundaries.
    fn check_parse(text: &str, result: Result<String, PatternError>) {
        match result {
            Ok(shown) => assert_eq!(shown, text, "round trip"),
            Err(e) => {
                assert!(e.at.start <= e.at.end && e.at.end <= text.len(), "{text:?}: {e:?}");
                assert!(text.is_char_boundary(e.at.start) && text.is_char_boundary(e.at.end), "{text:?}: {e:?}");
                assert!(!e.message.is_empty() && !e.message.ends_with('.'));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn path_covers_is_sound(a in path_pattern(), b in path_pattern(), p in comps(5)) {
            prop_assert!(a.covers(&a));
            // Paths near `b`, so that `b` matches some of them.
            for p in [format!("/{p}"), p.clone(), format!("{}{p}", b.body()), format!("{}b{p}", b.body())] {
                prop_assert!(!(a.covers(&b) && b.matches(&p)) || a.matches(&p), "{:?} covers {:?} but not {}", a, b, p);
            }
        }

        #[test]
        fn text_covers_is_sound(a in text_pattern(), b in text_pattern(), v in "[ab]{0,5}") {
            prop_assert!(a.covers(&a));
            prop_assert!(!(a.covers(&b) && b.matches(&v)) || a.matches(&v));
        }

        #[test]
        fn label_covers_is_sound(a in label_pattern(), b in label_pattern(), pod in prop::collection::vec(("[kj]", "[ab]{0,3}"), 0..3)) {
            let pod: Vec<(&str, &str)> = pod.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert!(a.covers(&a));
            prop_assert!(!(a.covers(&b) && b.matches(pod.iter().copied())) || a.matches(pod.iter().copied()));
        }

        #[test]
        fn parsers_never_panic(text in prop_oneof![".*", "[/a.*:@_A0-9 \\-]{0,14}"]) {
            check_parse(&text, PathPattern::parse(&text).map(|p| p.to_string()));
            check_parse(&text, LabelPattern::parse(&text).map(|p| p.to_string()));
            for syntax in [TextSyntax::ImageFullName, TextSyntax::ImageName, TextSyntax::ImageTag, TextSyntax::PodName,
                           TextSyntax::Namespace, TextSyntax::Cluster, TextSyntax::ProcessName] {
                check_parse(&text, TextPattern::parse(&text, syntax).map(|p| p.to_string()));
            }
        }
    }
}
