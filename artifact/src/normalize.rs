//! One truth for what a container condition's value is compared with.
//!
//! The runtime describes a container from raw facts (the image reference the
//! container runtime was given, the pod's namespace, name and labels, the
//! cluster's id and name) with [`container`]; the process name it compares
//! `processName` with is [`comm`]. The linter asks [`unmatchable`] and
//! [`unmatchable_label`] whether a value can ever equal (or, with a trailing
//! `*`, start) a field made that way, and [`witness`] gives, for a value that
//! can, a raw fact that it matches once normalised. Both sides call these
//! functions and no others, so that lint and runtime cannot disagree about
//! what a value can match; a property test in the compiler checks that
//! every value lint accepts has a witness.
//!
//! The normalisations:
//!
//! - an image reference is split as Docker splits it ([`split_image`]): the
//!   first component is a registry when it holds a `.` or a `:`, is
//!   `localhost`, or has an uppercase letter; otherwise the registry is
//!   `docker.io`, and a single-component repository there is under
//!   `library/`. `index.docker.io` is `docker.io`. The full name is
//!   `registry/repository`, the name the repository's last component, the
//!   tag the written tag (`latest` when none is written, none for a
//!   reference pinned by digest only). Docker Hub's official images have a
//!   second full name, without `library/` ([`image_full_name_forms`]);
//! - namespaces, pod names, labels, cluster ids and names are compared as
//!   the Kubernetes API and the runtime's configuration give them;
//! - a process name is the executable's basename cut to the kernel's 15
//!   bytes (`comm`).
//!
//! Syntax (which characters a Kubernetes name may hold, say) is checked by
//! [`crate::patterns`] first; what is left here is the values that are well
//! formed but that no normalised field can ever hold.

use crate::event::Container;
use crate::patterns::{LabelPattern, TextPattern, TextSyntax};
use std::ops::Range;

/// Docker Hub's registry, as normalised references name it.
pub const DOCKER_HUB: &str = "docker.io";

/// The legacy name of Docker Hub's registry, normalised to [`DOCKER_HUB`].
pub const DOCKER_HUB_LEGACY: &str = "index.docker.io";

/// The kernel's longest process name (`TASK_COMM_LEN` - 1), in bytes.
pub const COMM_BYTES: usize = 15;

/// The longest repository name a reference may have, registry included
/// (Docker's reference grammar).
pub const REFERENCE_NAME_BYTES: usize = 255;

/// The longest image name (last component): the rest of a full name is at
/// least a one-letter registry and a `/`.
pub const IMAGE_NAME_BYTES: usize = REFERENCE_NAME_BYTES - 2;

/// The longest Kubernetes namespace (a DNS label), in bytes.
pub const NAMESPACE_BYTES: usize = 63;

/// The longest pod name (a DNS subdomain), in bytes.
pub const POD_NAME_BYTES: usize = 253;

/// The longest label name or value, in bytes.
pub const LABEL_BYTES: usize = 63;

/// What the runtime knows of a container before normalisation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The image reference as the container runtime was given it
    /// (`nginx:1.25`, `docker.io/library/nginx:1.25`, `quay.io/x/y@sha256:...`).
    pub image: Option<&'a str>,
    /// The pod's namespace.
    pub namespace: Option<&'a str>,
    /// The pod's name.
    pub pod_name: Option<&'a str>,
    /// The pod's labels.
    pub labels: Vec<(&'a str, &'a str)>,
    /// The cluster id: the `kube-system` namespace's uid, or as configured.
    pub cluster_id: Option<&'a str>,
    /// The cluster name, as configured.
    pub cluster_name: Option<&'a str>,
}

/// The selector-facing description of a container: what container
/// conditions are compared with.
pub fn container(facts: &Facts) -> Container {
    let (full, name, tag) = match facts.image {
        Some(image) => {
            let (full, name, tag) = split_image(image);
            (Some(full), Some(name), tag)
        }
        None => (None, None, None),
    };
    Container {
        image_full_name: full,
        image_name: name,
        image_tag: tag,
        cluster_id: facts.cluster_id.map(str::to_owned),
        cluster_name: facts.cluster_name.map(str::to_owned),
        namespace: facts.namespace.map(str::to_owned),
        pod_name: facts.pod_name.map(str::to_owned),
        labels: facts.labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

/// Whether `component`, the first of a reference with more than one, names
/// a registry (Docker's rule).
pub fn is_registry(component: &str) -> bool {
    component.contains(['.', ':']) || component == "localhost" || component.chars().any(|c| c.is_ascii_uppercase())
}

/// Splits an image reference into full name, name and tag, as described in
/// the module documentation.
pub fn split_image(reference: &str) -> (String, String, Option<String>) {
    let (without_digest, digest) = reference.split_once('@').unwrap_or((reference, ""));
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match without_digest.get(last_slash..).and_then(|tail| tail.rfind(':')) {
        Some(colon) => {
            let at = last_slash + colon;
            (without_digest.get(..at).unwrap_or(without_digest), without_digest.get(at + 1..).unwrap_or("latest"))
        }
        None => (without_digest, "latest"),
    };
    let full = full_name(repo);
    let name = full.rsplit('/').next().unwrap_or(&full).to_string();
    let written_tag = without_digest.get(last_slash..).is_some_and(|tail| tail.contains(':'));
    let tag = (written_tag || digest.is_empty()).then(|| tag.to_string());
    (full, name, tag)
}

/// The normalised full name of a repository as written (no tag or digest).
fn full_name(repo: &str) -> String {
    let (registry, path) = match repo.split_once('/') {
        Some((first, rest)) if is_registry(first) => (first, rest),
        _ => (DOCKER_HUB, repo),
    };
    let registry = if registry == DOCKER_HUB_LEGACY { DOCKER_HUB } else { registry };
    if registry == DOCKER_HUB && !path.contains('/') {
        format!("{DOCKER_HUB}/library/{path}")
    } else {
        format!("{registry}/{path}")
    }
}

/// The spellings of a normalised full image name that name the same image:
/// Docker Hub's official images are `docker.io/library/NAME`, also written
/// `docker.io/NAME`. A `containerImageFullName` value matches when it
/// matches any of them.
pub fn image_full_name_forms(name: &str) -> Vec<String> {
    let mut forms = vec![name.to_string()];
    if let Some(rest) = name.strip_prefix("docker.io/library/") {
        if !rest.contains('/') {
            forms.push(format!("docker.io/{rest}"));
        }
    } else if let Some(rest) = name.strip_prefix("docker.io/") {
        if !rest.contains('/') {
            forms.push(format!("docker.io/library/{rest}"));
        }
    }
    forms
}

/// The process name the kernel reports for an executable: its basename,
/// cut to [`COMM_BYTES`] (on a character boundary; the kernel cuts bytes).
pub fn comm(executable: &str) -> String {
    let base = executable.rsplit('/').next().unwrap_or(executable);
    let mut end = base.len().min(COMM_BYTES);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    base.get(..end).unwrap_or(base).to_string()
}

/// A well-formed value that no normalised field can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmatchable {
    /// The bytes of the written value at fault.
    pub at: Range<usize>,
    /// Why it never matches: lowercase, the user's text in backticks.
    pub message: String,
    /// What would match.
    pub help: String,
}

/// Whether `pattern`, written `written`, a value of a condition of
/// `syntax`, can never match the field the runtime compares it with; `None`
/// when it can. Process names longer than the kernel keeps are left to the
/// caller, which reports them with its own figures.
pub fn unmatchable(syntax: TextSyntax, written: &str, pattern: &TextPattern) -> Option<Unmatchable> {
    let (body, open) = parts(pattern);
    let star = if open { "*" } else { "" };
    match syntax {
        TextSyntax::ImageName => {
            let Some(slash) = body.rfind('/') else { return too_long(syntax, written, pattern) };
            let last = body.get(slash + 1..).unwrap_or("");
            let shown = format!("{last}{star}");
            Some(Unmatchable {
                at: 0..slash + 1,
                message: format!("`{written}` never matches: image names are the last path component: `{shown}`"),
                help: format!(
                    "write `{shown}`, or `containerImageFullName: [{}]` to name the repository",
                    full_name_suggestion(body, open)
                ),
            })
        }
        TextSyntax::ImageFullName => {
            full_name_unmatchable(written, body, open).or_else(|| too_long(syntax, written, pattern))
        }
        TextSyntax::Namespace => dns_prefix_unmatchable(body, open, NAMESPACE_BYTES, "a namespace"),
        TextSyntax::PodName => dns_prefix_unmatchable(body, open, POD_NAME_BYTES, "a pod name"),
        TextSyntax::ImageTag | TextSyntax::Cluster => too_long(syntax, written, pattern),
        // The caller reports process names longer than the kernel keeps.
        TextSyntax::ProcessName | TextSyntax::UserName => None,
        // The runtime compares a uid's decimal text, which has no leading zero.
        TextSyntax::UserId => {
            let canonical = body.parse::<u32>().map(|id| id.to_string()).unwrap_or_default();
            (canonical != body).then(|| Unmatchable {
                at: 0..body.len(),
                message: format!("`{written}` never matches: user ids are compared as written without leading zeros"),
                help: format!("write `{canonical}`"),
            })
        }
    }
}

/// The last word: a value with no [`witness`] never matches. What is left
/// once the other rules have spoken is a name longer than Docker allows.
fn too_long(syntax: TextSyntax, written: &str, pattern: &TextPattern) -> Option<Unmatchable> {
    if witness(syntax, pattern).is_some() {
        return None;
    }
    let (max, what) = match syntax {
        TextSyntax::ImageName => (IMAGE_NAME_BYTES, "an image name (a repository's last component)"),
        _ => (REFERENCE_NAME_BYTES, "a full image name, registry included"),
    };
    let len = parts(pattern).0.len();
    Some(Unmatchable {
        at: max.min(len)..len,
        message: format!("`{written}` never matches: {what} is at most {max} bytes"),
        help: "check the value: Docker refuses longer repository names".to_string(),
    })
}

/// Whether a label pattern can never match a pod's labels; `at` is relative
/// to the written `key:value`.
pub fn unmatchable_label(pattern: &LabelPattern) -> Option<Unmatchable> {
    let (body, open) = parts(&pattern.value);
    let base = pattern.key.len() + 1;
    dns_prefix_unmatchable(body, open, LABEL_BYTES, "a label value").map(|mut u| {
        u.at = base + u.at.start..base + u.at.end;
        u
    })
}

/// A raw fact whose normalised field `pattern` matches: an image reference
/// for the image conditions, an executable's path for `processName`, the
/// value itself for the others. `None` exactly when the value can never
/// match (what [`unmatchable`] reports, and process names longer than the
/// kernel keeps).
pub fn witness(syntax: TextSyntax, pattern: &TextPattern) -> Option<String> {
    let (body, open) = parts(pattern);
    let raw = match syntax {
        TextSyntax::ImageName => {
            if body.contains('/') || body.len() > IMAGE_NAME_BYTES {
                return None;
            }
            let name = complete(body, open, IMAGE_NAME_BYTES);
            // Docker Hub's `docker.io/library/` when the whole name fits,
            // else the shortest registry there is.
            if name.len() + 18 <= REFERENCE_NAME_BYTES {
                name
            } else {
                format!("R/{name}")
            }
        }
        TextSyntax::ImageTag => format!("a:{}", if open && body.is_empty() { "a" } else { body }),
        TextSyntax::ImageFullName => full_name_witness(body, open)?,
        TextSyntax::Namespace => dns_complete(body, open, NAMESPACE_BYTES)?,
        TextSyntax::PodName => dns_complete(body, open, POD_NAME_BYTES)?,
        TextSyntax::Cluster => complete(body, open, usize::MAX),
        TextSyntax::ProcessName => {
            if body.len() > COMM_BYTES {
                return None;
            }
            format!("/{}", complete(body, open, COMM_BYTES))
        }
        TextSyntax::UserName => complete(body, open, usize::MAX),
        TextSyntax::UserId => body.parse::<u32>().ok()?.to_string(),
    };
    let field = field_of(syntax, &raw);
    let holds = match syntax {
        TextSyntax::ImageFullName => {
            field.is_some_and(|f| image_full_name_forms(&f).iter().any(|form| pattern.matches(form)))
        }
        _ => field.is_some_and(|f| pattern.matches(&f)),
    };
    holds.then_some(raw)
}

/// A pod label (key, value) that `pattern` matches; `None` when it can never
/// match.
pub fn witness_label(pattern: &LabelPattern) -> Option<(String, String)> {
    let (body, open) = parts(&pattern.value);
    // `key:` matches the empty value and `key:*` any value, the empty one too.
    let value = if body.is_empty() { String::new() } else { dns_complete(body, open, LABEL_BYTES)? };
    let holds = pattern.matches([(pattern.key.as_str(), value.as_str())]);
    holds.then(|| (pattern.key.clone(), value))
}

/// The normalised field a raw fact gives, for a condition of `syntax`.
pub fn field_of(syntax: TextSyntax, raw: &str) -> Option<String> {
    match syntax {
        TextSyntax::ImageFullName => Some(split_image(raw).0),
        TextSyntax::ImageName => Some(split_image(raw).1),
        TextSyntax::ImageTag => split_image(raw).2,
        TextSyntax::ProcessName => Some(comm(raw)),
        TextSyntax::Namespace
        | TextSyntax::PodName
        | TextSyntax::Cluster
        | TextSyntax::UserName
        | TextSyntax::UserId => Some(raw.to_string()),
    }
}

fn parts(pattern: &TextPattern) -> (&str, bool) {
    match pattern {
        TextPattern::Exact(x) => (x.as_str(), false),
        TextPattern::Prefix(p) => (p.as_str(), true),
    }
}

/// `body` made a whole value: itself when exact, else with `a` added when
/// it is empty or ends with a separator (and there is room under `max`).
fn complete(body: &str, open: bool, max: usize) -> String {
    let ends_alnum = body.chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric());
    if open && !ends_alnum && body.len() < max {
        format!("{body}a")
    } else {
        body.to_string()
    }
}

/// Like [`complete`], for names that must end with a letter or digit and
/// be at most `max` bytes: `None` when no such name starts with `body`.
fn dns_complete(body: &str, open: bool, max: usize) -> Option<String> {
    let value = complete(body, open, max);
    let ends_alnum = value.chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric());
    (ends_alnum && value.len() <= max).then_some(value)
}

fn dns_prefix_unmatchable(body: &str, open: bool, max: usize, what: &str) -> Option<Unmatchable> {
    if !open || body.is_empty() || dns_complete(body, open, max).is_some() {
        return None;
    }
    let last = body.len() - body.chars().next_back().map_or(0, char::len_utf8);
    Some(Unmatchable {
        at: last..body.len(),
        message: format!(
            "`{body}*` never matches: {what} is at most {max} bytes and ends with a letter or digit, so none starts with these {} bytes",
            body.len()
        ),
        help: "shorten the prefix, or end it with a letter or digit".to_string(),
    })
}

/// The full name Docker would give a repository written `body`.
fn full_name_suggestion(body: &str, open: bool) -> String {
    let star = if open { "*" } else { "" };
    let (first, rest) = body.split_once('/').unwrap_or(("", body));
    if is_registry(first) && first != DOCKER_HUB_LEGACY {
        return format!("{body}{star}");
    }
    if first == DOCKER_HUB_LEGACY {
        return format!("{DOCKER_HUB}/{rest}{star}");
    }
    if open {
        format!("{DOCKER_HUB}/{body}*")
    } else {
        full_name(body)
    }
}

fn full_name_unmatchable(written: &str, body: &str, open: bool) -> Option<Unmatchable> {
    let (first, _) = body.split_once('/')?;
    let suggestion = full_name_suggestion(body, open);
    if first == DOCKER_HUB_LEGACY {
        return Some(Unmatchable {
            at: 0..first.len(),
            message: format!("`{written}` never matches: `{DOCKER_HUB_LEGACY}` is Docker Hub, whose full names start with `{DOCKER_HUB}/`"),
            help: format!("write `{suggestion}`"),
        });
    }
    if is_registry(first) {
        return None;
    }
    Some(Unmatchable {
        at: 0..first.len(),
        message: format!(
            "`{written}` never matches: `{first}` is not a registry (a registry has a `.` or a `:port`, or is `localhost`), so an image written this way is Docker Hub's: `{suggestion}`"
        ),
        help: format!("write `{suggestion}`"),
    })
}

/// A reference whose normalised full name (in one of its forms) starts
/// with `body` (or is it, when exact).
fn full_name_witness(body: &str, open: bool) -> Option<String> {
    match body.split_once('/') {
        // A registry prefix: complete it to the shortest registry, then a repository.
        None if open => {
            let mut host = body.to_string();
            if host.starts_with('[') && !host.contains(']') {
                if host.ends_with(['[', ':']) {
                    host.push('1');
                }
                host.push(']');
            } else if host.ends_with(':') {
                host.push('0');
            } else if !host.ends_with(|c: char| c.is_ascii_alphanumeric() || c == ']') {
                host.push('a');
            }
            if !is_registry(&host) {
                host.push_str(":0");
            }
            let reference = format!("{host}/a");
            (reference.len() <= REFERENCE_NAME_BYTES).then_some(reference)
        }
        None => None,
        Some((first, _)) if !is_registry(first) || first == DOCKER_HUB_LEGACY => None,
        Some(_) if body.len() > REFERENCE_NAME_BYTES => None,
        Some(_) => Some(complete(body, open, REFERENCE_NAME_BYTES)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_like_docker() {
        let cases = [
            ("nginx", ("docker.io/library/nginx", "nginx", Some("latest"))),
            ("nginx:1.25", ("docker.io/library/nginx", "nginx", Some("1.25"))),
            ("bitnami/redis:7", ("docker.io/bitnami/redis", "redis", Some("7"))),
            ("gcr.io/proj/app:v1", ("gcr.io/proj/app", "app", Some("v1"))),
            ("localhost:5000/app", ("localhost:5000/app", "app", Some("latest"))),
            ("localhost/app", ("localhost/app", "app", Some("latest"))),
            ("quay.io/x/y@sha256:abc", ("quay.io/x/y", "y", None)),
            ("quay.io/x/y:1@sha256:abc", ("quay.io/x/y", "y", Some("1"))),
            ("index.docker.io/nginx", ("docker.io/library/nginx", "nginx", Some("latest"))),
            ("index.docker.io/x/y:2", ("docker.io/x/y", "y", Some("2"))),
            ("docker.io/nginx", ("docker.io/library/nginx", "nginx", Some("latest"))),
            ("Registry/app", ("Registry/app", "app", Some("latest"))),
            ("[::1]:5000/app:3", ("[::1]:5000/app", "app", Some("3"))),
        ];
        for (reference, (full, name, tag)) in cases {
            let want = (full.to_string(), name.to_string(), tag.map(str::to_string));
            assert_eq!(split_image(reference), want, "{reference}");
        }
    }

    #[test]
    fn comm_is_the_basename_cut_to_15_bytes() {
        assert_eq!(comm("/usr/bin/averyveryverylongname"), "averyveryverylo");
        assert_eq!(comm("/bin/sh"), "sh");
        assert_eq!(comm("sh"), "sh");
        assert_eq!(comm(&format!("/x/{}é", "a".repeat(14))), "a".repeat(14));
    }

    fn text(t: &str, syntax: TextSyntax) -> TextPattern {
        TextPattern::parse(t, syntax).unwrap_or_else(|e| panic!("{t}: {e:?}"))
    }

    #[test]
    fn image_names_are_last_components() {
        let u = unmatchable(TextSyntax::ImageName, "library/nginx", &text("library/nginx", TextSyntax::ImageName));
        let u = u.unwrap_or_else(|| panic!("library/nginx accepted"));
        assert_eq!(u.at, 0..8);
        assert!(u.message.contains("image names are the last path component: `nginx`"), "{}", u.message);
        assert!(u.help.contains("docker.io/library/nginx"), "{}", u.help);
        let u = unmatchable(TextSyntax::ImageName, "bitnami/red*", &text("bitnami/red*", TextSyntax::ImageName));
        assert!(u.is_some_and(|u| u.message.contains("`red*`")));
        assert_eq!(unmatchable(TextSyntax::ImageName, "nginx", &text("nginx", TextSyntax::ImageName)), None);
    }

    #[test]
    fn full_names_start_with_a_registry() {
        let check = |t: &str| unmatchable(TextSyntax::ImageFullName, t, &text(t, TextSyntax::ImageFullName));
        for ok in ["docker.io/nginx", "docker.io/library/nginx", "localhost/app", "gcr.io/p/a*", "docker*", "quay.io/*"]
        {
            assert_eq!(check(ok), None, "{ok}");
        }
        let help = |t: &str| check(t).map(|u| u.help).unwrap_or_default();
        assert_eq!(help("library/nginx"), "write `docker.io/library/nginx`");
        assert_eq!(help("bitnami/redis"), "write `docker.io/bitnami/redis`");
        assert_eq!(help("index.docker.io/nginx"), "write `docker.io/nginx`");
        assert_eq!(help("myreg/app*"), "write `docker.io/myreg/app*`");
    }

    #[test]
    fn prefixes_that_no_name_completes() {
        let long = format!("{}-*", "a".repeat(62));
        let p = text(&long, TextSyntax::Namespace);
        assert!(unmatchable(TextSyntax::Namespace, &long, &p).is_some());
        assert_eq!(witness(TextSyntax::Namespace, &p), None);
        let fine = format!("{}-*", "a".repeat(61));
        let p = text(&fine, TextSyntax::Namespace);
        assert_eq!(unmatchable(TextSyntax::Namespace, &fine, &p), None);
        assert_eq!(witness(TextSyntax::Namespace, &p), Some(format!("{}-a", "a".repeat(61))));
        let label = LabelPattern::parse(&format!("app:{}.*", "v".repeat(62))).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(unmatchable_label(&label).is_some_and(|u| u.at == (66..67)));
        assert_eq!(witness_label(&label), None);
    }

    #[test]
    fn witnesses_match_once_normalised() {
        for (syntax, values) in [
            (TextSyntax::ImageName, "nginx ng* web-* *"),
            (
                TextSyntax::ImageFullName,
                "docker.io/nginx docker.io/library/nginx docker* docker.io:* gcr.io/p/* quay.io/x/y-* localhost:50*",
            ),
            (TextSyntax::ImageTag, "latest v1* *"),
            (TextSyntax::Namespace, "default kube-* *"),
            (TextSyntax::PodName, "web-0 web.* *"),
            (TextSyntax::Cluster, "eu-1 eu* *"),
            (TextSyntax::ProcessName, "bash kworker* * averyverylongna"),
            (TextSyntax::UserName, "www-data app* * 1000"),
            (TextSyntax::UserId, "0 1000 4294967294"),
        ] {
            for value in values.split(' ') {
                let pattern = text(value, syntax);
                assert!(witness(syntax, &pattern).is_some(), "{syntax:?} {value}");
            }
        }
    }
}
