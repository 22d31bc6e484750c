//! d4c-testgen: generated policies, for benchmarks, fuzz seeds and scale
//! tests (test support, kept out of the product crate `d4cc`).
//!
//! Input: a selector count and a seed. Output: the YAML text of a realistic
//! policy that lints with no diagnostic at all: no error, no warning. The
//! same arguments always give the same text (a small inline splitmix64
//! generator, no dependency).
//!
//! What a generated policy looks like:
//! - the selectors are split between `file:` and `process:`, the file section
//!   taking the odd one; a section with no selector is left out;
//! - each selector has a unique name and a varied mix of conditions:
//!   operations, path patterns of all four forms (`/exact`, `/dir/*`,
//!   `/dir/**`, `/prefix*`), image names or full names, tags, namespaces,
//!   pod labels and names, cluster names and ids, volume flags, process
//!   executables or names, the interactive flag; lists are written in flow
//!   (`[a, b]`) or block (`- a`) style, values plain or quoted;
//! - the responses use every selector: each matches one to three selectors
//!   of its own, and about two in three also exclude one or two "exempt"
//!   selectors of their own (a pod label that no match selector has, so an
//!   exclude never covers its matches); this gives about one response per
//!   3.5 selectors;
//! - actions are `log`, `alert`, `[log, alert]` or `[alert, block]`; a file
//!   response blocks only when each selector it matches has a
//!   `targetFilePath` or matches no `createFile`/`modifyFile`/`deleteFile`,
//!   and no path is `/**`.
//!
//! Every rule that would make the output unclean is respected by
//! construction: names are unique, list values distinct, `processName` at
//! most 15 bytes, exclusive conditions never together, no response repeats
//! another, and the distinct path patterns stay within
//! [`MAX_PATH_PATTERNS`].

use d4cc::limits::{MAX_PATH_PATTERNS, MAX_SELECTORS_PER_TYPE};
use std::fmt::Write as _;

/// Largest selector count [`generate_policy`] keeps clean: two full sections.
pub const MAX_CLEAN_SELECTORS: usize = 2 * MAX_SELECTORS_PER_TYPE;

/// A clean policy with `selectors` selectors in all, split between `file:`
/// (`selectors / 2` rounded up) and `process:` (rounded down).
///
/// `selectors` of 0 is taken as 1: a policy needs at least one section.
/// The output lints clean for up to `2 * MAX_SELECTORS_PER_TYPE` (32,768)
/// selectors ([`MAX_CLEAN_SELECTORS`]); beyond, `D4C0033` reports the
/// per-type limit. A selector has about three conditions on average; of its
/// path patterns at most one is its own, the rest come from a shared
/// vocabulary of common system paths, so the distinct patterns stay far below
/// [`MAX_PATH_PATTERNS`]. The text is about 220 bytes per selector: 10,000
/// selectors are about 2.2 MB, with about 2,860 responses.
pub fn generate_policy(selectors: usize, seed: u64) -> String {
    Generator::new(seed, Paths::Varied).policy(selectors)
}

/// A clean policy of `selectors` selectors (split as in [`generate_policy`])
/// with exactly `paths_per_selector` path patterns each, for benchmarks of
/// the path tables: `targetFilePath` in file selectors, `processExecutable`
/// in process selectors.
///
/// The patterns come, in turn, from a pool of [`MAX_PATH_PATTERNS`] (65,536)
/// distinct patterns of all four forms, so the policy holds
/// `min(selectors * paths_per_selector, 65,536)` distinct patterns and stays
/// within the limit: past 65,536 patterns the pool is used again from its
/// start, and later selectors repeat the patterns of earlier ones (never
/// within one selector). For example, 10,000 selectors with 10 paths each
/// write 100,000 patterns, of which 65,536 are distinct.
///
/// `paths_per_selector` is clamped to `1..=MAX_PATH_PATTERNS`; `selectors` of
/// 0 is taken as 1. The selectors have the other conditions of
/// [`generate_policy`] except `processName` (exclusive with
/// `processExecutable`), and every selector, exempt ones included, carries
/// its paths.
pub fn generate_path_heavy(selectors: usize, paths_per_selector: usize, seed: u64) -> String {
    let per = paths_per_selector.clamp(1, MAX_PATH_PATTERNS);
    Generator::new(seed, Paths::Pool { per, next: 0 }).policy(selectors)
}

/// Path patterns per selector in [`generate_deep_paths`].
pub const DEEP_PATHS_PER_SELECTOR: usize = 8;

/// A clean policy of `patterns` deep path patterns, each in a directory of
/// its own `depth` components down (issue 14, fault 10): pattern `k` is
/// `/data/v{k}/c1/c2/.../c{depth}` followed by `/leaf`, `/*` or `/**` in
/// turn, so each adds about `depth` path prefixes of its own, and there are
/// `patterns * (depth + 1) + 1` in all (each `/leaf` one more). File
/// selectors hold [`DEEP_PATHS_PER_SELECTOR`] patterns each, and one
/// response alerts on them all. About `4 * depth` bytes per pattern: 1,250
/// patterns 400 deep are about 2 MB.
pub fn generate_deep_paths(patterns: usize, depth: usize) -> String {
    let mut chain = String::new();
    for i in 1..=depth {
        let _ = write!(chain, "/c{i}");
    }
    let selectors = patterns.div_ceil(DEEP_PATHS_PER_SELECTOR).max(1);
    let mut out = String::from("file:\n  selectors:\n");
    for s in 0..selectors {
        let _ = writeln!(out, "    - name: deep{s}\n      operation: [createFile, modifyFile]\n      targetFilePath:");
        let end = patterns.min((s + 1) * DEEP_PATHS_PER_SELECTOR);
        for k in (s * DEEP_PATHS_PER_SELECTOR)..end {
            let tail = ["/leaf", "/*", "/**"].get(k % 3).copied().unwrap_or_default();
            let _ = writeln!(out, "        - /data/v{k}{chain}{tail}");
        }
        if end <= s * DEEP_PATHS_PER_SELECTOR {
            let _ = writeln!(out, "        - /data/empty");
        }
    }
    out.push_str("  responses:\n    - match: [");
    for s in 0..selectors {
        let _ = write!(out, "{}deep{s}", if s == 0 { "" } else { ", " });
    }
    out.push_str("]\n      actions: [alert]\n");
    out
}

/// splitmix64: tiny, fast, and good enough to vary a policy.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or_default()
    }

    /// `count` distinct items (fewer when `items` is shorter), in random order.
    fn pick_distinct<'a>(&mut self, items: &[&'a str], count: usize) -> Vec<&'a str> {
        let mut pool: Vec<&str> = items.to_vec();
        let mut out = Vec::with_capacity(count);
        while out.len() < count && !pool.is_empty() {
            let i = self.below(pool.len());
            out.push(pool.swap_remove(i));
        }
        out
    }
}

/// How selectors get their path patterns.
enum Paths {
    /// A varied mix: common system paths plus at most one of the selector's own.
    Varied,
    /// Exactly `per` patterns from the pool of distinct patterns, in turn.
    Pool { per: usize, next: usize },
}

/// A condition's value as it will be written.
enum CondValue {
    List(Vec<String>),
    Flag(bool),
}

/// One selector, ready to write.
struct Sel {
    name: String,
    conditions: Vec<(&'static str, CondValue)>,
    /// Whether it may match `createFile`, `modifyFile` or `deleteFile`.
    integrity: bool,
    /// Whether it has a `targetFilePath`.
    has_path: bool,
}

/// One response, ready to write.
struct Resp {
    matches: Vec<String>,
    excludes: Vec<String>,
    actions: &'static [&'static str],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Process,
}

const FILE_OPS_DRIFT: &[&[&str]] = &[
    &["createExecutable", "modifyExecutable"],
    &["createExecutable", "modifyExecutable", "execMemFd"],
    &["execMemFd"],
];
const FILE_OPS_INTEGRITY: &[&[&str]] = &[
    &["createFile", "modifyFile"],
    &["modifyFile", "deleteFile"],
    &["createFile", "modifyFile", "deleteFile"],
    &["deleteFile"],
    &["createExecutable", "modifyExecutable", "createFile", "modifyFile"],
];
const PROCESS_OPS: &[&[&str]] = &[&["exec"], &["fork"], &["fork", "exec"]];

const RECURSIVE_PATHS: &[&str] = &[
    "/etc/**",
    "/usr/bin/**",
    "/usr/sbin/**",
    "/usr/lib/**",
    "/bin/**",
    "/sbin/**",
    "/lib/**",
    "/opt/**",
    "/var/lib/dpkg/**",
    "/root/.ssh/**",
    "/home/**",
    "/srv/www/**",
];
const CHILDREN_PATHS: &[&str] =
    &["/etc/cron.d/*", "/etc/systemd/system/*", "/usr/local/bin/*", "/var/spool/cron/*", "/tmp/*", "/dev/shm/*"];
const EXACT_PATHS: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/sudoers",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/root/.bashrc",
    "/etc/ld.so.preload",
];
const PREFIX_PATHS: &[&str] =
    &["/etc/rc*", "/usr/local/sbin/kube*", "/var/log/app*", "/etc/ssh/sshd_config*", "/tmp/.X*", "/etc/.*"];
const EXECUTABLES: &[&str] = &[
    "/bin/sh",
    "/bin/bash",
    "/bin/dash",
    "/usr/bin/curl",
    "/usr/bin/wget",
    "/usr/bin/nc*",
    "/usr/bin/apt*",
    "/usr/sbin/**",
    "/tmp/*",
    "/dev/shm/**",
    "/usr/local/bin/*",
    "/usr/bin/python3*",
];
const PROCESS_NAMES: &[&str] = &[
    "sh", "bash", "dash", "zsh", "curl", "wget", "nc", "ncat", "python3*", "perl", "xmrig", "kubectl", "apt-get",
    "nsenter", "ssh*", "socat",
];
const IMAGE_NAMES: &[&str] = &["nginx", "redis", "postgres", "busybox", "kafka", "elastic-*", "grafana", "envoy"];
const IMAGE_FULL_NAMES: &[&str] =
    &["docker.io/library/nginx", "ghcr.io/acme/*", "gcr.io/distroless/static", "quay.io/prometheus/node-exporter"];
const IMAGE_TAGS: &[&str] = &["latest", "1.25.3", "v2*", "stable-alpine", "3.19"];
const NAMESPACES: &[&str] = &["prod", "staging", "payments", "default", "monitoring", "ingress-*", "data"];
const POD_LABELS: &[&str] = &["tier:backend", "env:prod", "app.kubernetes.io/name:api*", "team:", "release:*"];
const POD_NAMES: &[&str] = &["api-*", "worker-*", "web-0", "db-primary-0"];
const CLUSTER_NAMES: &[&str] = &["prod-eu-1", "prod-us-2", "staging"];
const FILE_PREFIXES: &[&str] = &["bin-drift", "etc-writes", "config-changes", "log-tamper", "secrets", "cron-jobs"];
const PROCESS_PREFIXES: &[&str] = &["shells", "downloaders", "pkg-managers", "miners", "net-tools", "admin-tools"];
const EXEMPT_LABEL: &str = "d4c.example.com/exempt:true";

struct Generator {
    rng: Rng,
    paths: Paths,
}

impl Generator {
    fn new(seed: u64, paths: Paths) -> Self {
        Self { rng: Rng(seed), paths }
    }

    fn policy(&mut self, selectors: usize) -> String {
        let selectors = selectors.max(1);
        let file = selectors.div_ceil(2);
        let process = selectors / 2;
        let mut out = String::with_capacity(selectors * 160 + 256);
        let _ = writeln!(
            out,
            "# Generated by d4c_testgen: {selectors} selectors ({file} file, {process} process).\n\
             # Expect: clean.\nversion: \"1\""
        );
        for (kind, count) in [(Kind::File, file), (Kind::Process, process)] {
            if count > 0 {
                self.section(&mut out, kind, count);
            }
        }
        out
    }

    fn section(&mut self, out: &mut String, kind: Kind, count: usize) {
        let mut selectors: Vec<Sel> = Vec::with_capacity(count);
        let mut responses: Vec<Resp> = Vec::with_capacity(count / 3 + 1);
        while selectors.len() < count {
            let remaining = count - selectors.len();
            let chunk = self.rng.between(2, 5).min(remaining);
            // Selectors excluded (exempt), the rest are matched: one to three.
            let mut exempt = chunk.saturating_sub(3);
            if exempt == 0 && chunk >= 2 && self.rng.chance(33) {
                exempt = 1;
            }
            let matched = chunk - exempt;
            let mut resp = Resp { matches: Vec::new(), excludes: Vec::new(), actions: &["log"] };
            let mut blockable = true;
            for _ in 0..matched {
                let sel = self.selector(kind, selectors.len(), false);
                blockable &= !sel.integrity || sel.has_path;
                resp.matches.push(sel.name.clone());
                selectors.push(sel);
            }
            for _ in 0..exempt {
                let sel = self.selector(kind, selectors.len(), true);
                resp.excludes.push(sel.name.clone());
                selectors.push(sel);
            }
            resp.actions = match self.rng.below(10) {
                0..=2 => &["log"],
                3..=5 => &["alert"],
                6 => &["log", "alert"],
                _ if blockable => &["alert", "block"],
                _ => &["alert"],
            };
            responses.push(resp);
        }
        let _ = writeln!(out, "{}:\n  selectors:", if kind == Kind::File { "file" } else { "process" });
        for sel in &selectors {
            self.write_selector(out, sel);
        }
        out.push_str("  responses:\n");
        for (i, resp) in responses.iter().enumerate() {
            if i % 16 == 0 {
                let _ = writeln!(out, "    # responses {} and on", i + 1);
            }
            self.write_list(out, "    - ", "match", &resp.matches, 6);
            if !resp.excludes.is_empty() {
                self.write_list(out, "      ", "exclude", &resp.excludes, 6);
            }
            let _ = writeln!(out, "      actions: [{}]", resp.actions.join(", "));
        }
    }

    /// Selector number `index` of its section.
    fn selector(&mut self, kind: Kind, index: usize, exempt: bool) -> Sel {
        let prefixes = if kind == Kind::File { FILE_PREFIXES } else { PROCESS_PREFIXES };
        let name =
            if exempt { format!("exempt-{index:05}") } else { format!("{}-{index:05}", self.rng.pick(prefixes)) };
        let mut sel = Sel { name, conditions: Vec::new(), integrity: true, has_path: false };
        let pooled = matches!(self.paths, Paths::Pool { .. });
        if exempt {
            sel.conditions.push(("kubernetesPodLabel", CondValue::List(vec![EXEMPT_LABEL.to_string()])));
            if self.rng.chance(40) {
                sel.conditions.push(("containerImageName", CondValue::List(vec!["debug-tools".to_string()])));
            }
            if pooled {
                let key = if kind == Kind::File { "targetFilePath" } else { "processExecutable" };
                let paths = self.pool_paths();
                sel.conditions.push((key, CondValue::List(paths)));
            }
            return sel;
        }
        match kind {
            Kind::File => self.file_conditions(&mut sel, index),
            Kind::Process => self.process_conditions(&mut sel, index),
        }
        self.common_conditions(&mut sel, index);
        sel
    }

    fn file_conditions(&mut self, sel: &mut Sel, index: usize) {
        let drift = self.rng.chance(40);
        let ops = if self.rng.chance(12) {
            None
        } else if drift {
            FILE_OPS_DRIFT.get(self.rng.below(FILE_OPS_DRIFT.len())).copied()
        } else {
            FILE_OPS_INTEGRITY.get(self.rng.below(FILE_OPS_INTEGRITY.len())).copied()
        };
        sel.integrity =
            ops.is_none_or(|ops| ops.iter().any(|o| matches!(*o, "createFile" | "modifyFile" | "deleteFile")));
        if let Some(ops) = ops {
            sel.conditions.push(("operation", CondValue::List(ops.iter().map(|o| o.to_string()).collect())));
        }
        let want_path =
            ops.is_none() || matches!(self.paths, Paths::Pool { .. }) || self.rng.chance(if drift { 55 } else { 90 });
        if want_path {
            let paths = self.paths(index, Kind::File);
            sel.conditions.push(("targetFilePath", CondValue::List(paths)));
            sel.has_path = true;
        }
        if self.rng.chance(10) {
            sel.conditions.push(("ignoreVolumeMounts", CondValue::Flag(true)));
        } else if self.rng.chance(10) {
            sel.conditions.push(("ignoreVolumeFiles", CondValue::Flag(true)));
        }
    }

    fn process_conditions(&mut self, sel: &mut Sel, index: usize) {
        let ops = if self.rng.chance(15) { None } else { PROCESS_OPS.get(self.rng.below(PROCESS_OPS.len())).copied() };
        if let Some(ops) = ops {
            sel.conditions.push(("operation", CondValue::List(ops.iter().map(|o| o.to_string()).collect())));
        }
        let pooled = matches!(self.paths, Paths::Pool { .. });
        let roll = self.rng.below(100);
        if pooled || roll < 50 || (ops.is_none() && roll >= 85) {
            let paths = self.paths(index, Kind::Process);
            sel.conditions.push(("processExecutable", CondValue::List(paths)));
        } else if roll < 85 {
            let count = self.rng.between(1, 3);
            let mut names: Vec<String> =
                self.rng.pick_distinct(PROCESS_NAMES, count).iter().map(|s| s.to_string()).collect();
            if self.rng.chance(30) {
                // A name of this selector's own: at most 15 bytes.
                names.push(format!("svc{}", index % 100_000));
            }
            sel.conditions.push(("processName", CondValue::List(names)));
        }
        if self.rng.chance(25) {
            sel.conditions.push(("sessionLeaderInteractive", CondValue::Flag(self.rng.chance(70))));
        }
    }

    /// Conditions both kinds have.
    fn common_conditions(&mut self, sel: &mut Sel, index: usize) {
        if self.rng.chance(60) {
            if self.rng.chance(70) {
                let count = self.rng.between(1, 2);
                let mut names: Vec<String> =
                    self.rng.pick_distinct(IMAGE_NAMES, count).iter().map(|s| s.to_string()).collect();
                if self.rng.chance(40) {
                    names.push(format!("app-{index}"));
                }
                sel.conditions.push(("containerImageName", CondValue::List(names)));
            } else {
                let mut names = vec![self.rng.pick(IMAGE_FULL_NAMES).to_string()];
                if self.rng.chance(50) {
                    names.push(format!("registry.example.com:5000/team-{}/app-{index}", index % 7));
                }
                sel.conditions.push(("containerImageFullName", CondValue::List(names)));
            }
        }
        if self.rng.chance(20) {
            let count = self.rng.between(1, 2);
            let tags = self.rng.pick_distinct(IMAGE_TAGS, count).iter().map(|s| s.to_string()).collect();
            sel.conditions.push(("containerImageTag", CondValue::List(tags)));
        }
        if self.rng.chance(50) {
            let count = self.rng.between(1, 2);
            let mut namespaces: Vec<String> =
                self.rng.pick_distinct(NAMESPACES, count).iter().map(|s| s.to_string()).collect();
            if self.rng.chance(30) {
                namespaces.push(format!("team-{}", index % 13 + 100));
            }
            sel.conditions.push(("kubernetesNamespace", CondValue::List(namespaces)));
        }
        if self.rng.chance(30) {
            let mut labels = vec![format!("app:web-{index}")];
            if self.rng.chance(50) {
                labels.push(self.rng.pick(POD_LABELS).to_string());
            }
            sel.conditions.push(("kubernetesPodLabel", CondValue::List(labels)));
        }
        if self.rng.chance(15) {
            sel.conditions.push(("kubernetesPodName", CondValue::List(vec![self.rng.pick(POD_NAMES).to_string()])));
        }
        if self.rng.chance(10) {
            sel.conditions
                .push(("kubernetesClusterName", CondValue::List(vec![self.rng.pick(CLUSTER_NAMES).to_string()])));
        }
        if self.rng.chance(5) {
            let (a, b) = (self.rng.next(), self.rng.next());
            let id = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            );
            sel.conditions.push(("kubernetesClusterId", CondValue::List(vec![id])));
        }
    }

    /// Path patterns for selector `index`: one to four, distinct.
    fn paths(&mut self, index: usize, kind: Kind) -> Vec<String> {
        if matches!(self.paths, Paths::Pool { .. }) {
            return self.pool_paths();
        }
        let count = self.rng.between(1, 3);
        let mut out: Vec<String> = Vec::with_capacity(count + 1);
        if self.rng.chance(45) {
            out.push(match (kind, self.rng.below(4)) {
                (Kind::Process, _) => format!("/opt/app-{index}/bin/*"),
                (_, 0) => format!("/etc/app-{index}/settings.yaml"),
                (_, 1) => format!("/srv/app-{index}/config/*"),
                (_, 2) => format!("/opt/app-{index}/**"),
                _ => format!("/var/lib/app-{index}/data*"),
            });
        }
        if kind == Kind::Process {
            out.extend(self.rng.pick_distinct(EXECUTABLES, count).iter().map(|s| s.to_string()));
            return out;
        }
        let mut forms = [RECURSIVE_PATHS, CHILDREN_PATHS, EXACT_PATHS, PREFIX_PATHS];
        // Take the forms in a random order, one value each, so one list may
        // mix all four.
        for i in (1..forms.len()).rev() {
            forms.swap(i, self.rng.below(i + 1));
        }
        for form in forms.iter().take(count) {
            out.push(self.rng.pick(form).to_string());
        }
        out
    }

    /// The next `per` patterns of the pool, wrapping round at its end.
    fn pool_paths(&mut self) -> Vec<String> {
        let Paths::Pool { per, next } = &mut self.paths else { return Vec::new() };
        let mut out = Vec::with_capacity(*per);
        for _ in 0..*per {
            out.push(pool_path(*next));
            *next = (*next + 1) % MAX_PATH_PATTERNS;
        }
        out
    }

    fn write_selector(&mut self, out: &mut String, sel: &Sel) {
        let _ = writeln!(out, "    - name: {}", sel.name);
        for (key, value) in &sel.conditions {
            match value {
                CondValue::Flag(flag) => {
                    let _ = writeln!(out, "      {key}: {flag}");
                }
                CondValue::List(values) => self.write_list(out, "      ", key, values, 8),
            }
        }
    }

    /// `key: [a, b]` or a block list under `key:`, items indented by `indent`.
    fn write_list(&mut self, out: &mut String, lead: &str, key: &str, values: &[String], indent: usize) {
        if values.len() >= 2 && self.rng.chance(20) {
            let _ = writeln!(out, "{lead}{key}:");
            for value in values {
                let _ = writeln!(out, "{:indent$}- {}", "", self.scalar(value));
            }
        } else {
            let items: Vec<String> = values.iter().map(|v| self.scalar(v)).collect();
            let _ = writeln!(out, "{lead}{key}: [{}]", items.join(", "));
        }
    }

    /// `value` as a YAML scalar: quoted when plain text would not be read as
    /// this string, and now and then when it need not be.
    fn scalar(&mut self, value: &str) -> String {
        let needs_quotes = value.contains([':', '#', ' ', ',', '[', ']', '{', '}'])
            || value.starts_with(['*', '&', '!', '|', '>', '\'', '"', '%', '@', '`', '-', '?'])
            || value.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            || matches!(
                value,
                "" | "true" | "false" | "null" | "~" | "True" | "False" | "Null" | "TRUE" | "FALSE" | "NULL"
            );
        if needs_quotes || self.rng.chance(5) {
            format!("\"{value}\"")
        } else {
            value.to_string()
        }
    }
}

/// Pattern `k` of the pool of `MAX_PATH_PATTERNS` distinct patterns: the
/// four forms in turn, each under its own directory.
fn pool_path(k: usize) -> String {
    let (form, d) = (k % 4, k / 4);
    let (a, b) = (d / 128, d % 128);
    match form {
        0 => format!("/var/lib/app{a}/data{b}/**"),
        1 => format!("/etc/app{a}/conf{b}.d/*"),
        2 => format!("/opt/app{a}/bin/tool{b}"),
        _ => format!("/usr/local/app{a}/lib{b}*"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4cc::lint::lint_bytes;
    use std::collections::HashSet;

    fn assert_clean(text: &str) {
        let (_, output) = lint_bytes("gen.yaml", text.as_bytes().to_vec());
        assert!(
            output.diagnostics.is_empty(),
            "{} diagnostics, first: {:#?}\n--- text (start) ---\n{}",
            output.diagnostics.len(),
            output.diagnostics.first(),
            text.get(..text.len().min(4000)).unwrap_or_default()
        );
    }

    fn count_selectors(text: &str) -> usize {
        text.lines().filter(|l| l.starts_with("    - name: ")).count()
    }

    #[test]
    fn generated_policies_lint_clean() {
        for (selectors, seed) in [(1, 0), (2, 1), (3, 2), (7, 3), (64, 4), (1000, 5)] {
            let text = generate_policy(selectors, seed);
            assert_eq!(count_selectors(&text), selectors, "{selectors}");
            assert_clean(&text);
        }
        // Zero is taken as one.
        assert_eq!(count_selectors(&generate_policy(0, 0)), 1);
        assert_clean(&generate_policy(0, 0));
    }

    #[test]
    fn many_seeds_lint_clean() {
        for seed in 0..200 {
            assert_clean(&generate_policy(40, seed));
        }
    }

    #[test]
    fn split_is_even_with_file_taking_the_odd_one() {
        let text = generate_policy(9, 7);
        let process_at = text.find("\nprocess:").unwrap_or(text.len());
        let (file, process) = text.split_at(process_at);
        assert_eq!((count_selectors(file), count_selectors(process)), (5, 4));
        assert!(!generate_policy(1, 7).contains("process:"));
    }

    #[test]
    fn generation_is_deterministic_per_seed() {
        assert_eq!(generate_policy(64, 42), generate_policy(64, 42));
        assert_ne!(generate_policy(64, 42), generate_policy(64, 43));
        assert_eq!(generate_path_heavy(20, 3, 9), generate_path_heavy(20, 3, 9));
        assert_ne!(generate_path_heavy(20, 3, 9), generate_path_heavy(20, 3, 10));
    }

    #[test]
    fn conditions_are_varied() {
        let text = generate_policy(1000, 1);
        for key in [
            "operation:",
            "targetFilePath:",
            "processExecutable:",
            "processName:",
            "containerImageName:",
            "containerImageFullName:",
            "containerImageTag:",
            "kubernetesNamespace:",
            "kubernetesPodLabel:",
            "kubernetesPodName:",
            "kubernetesClusterName:",
            "kubernetesClusterId:",
            "ignoreVolumeMounts:",
            "ignoreVolumeFiles:",
            "sessionLeaderInteractive:",
            "exclude:",
            "actions: [alert, block]",
            "actions: [log]",
        ] {
            assert!(text.contains(key), "no `{key}`");
        }
        for form in ["/**", "/*]", "*]", "/etc/passwd"] {
            assert!(text.contains(form), "no path like `{form}`");
        }
    }

    fn path_values(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut in_block = false;
        for line in text.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("targetFilePath:").or_else(|| t.strip_prefix("processExecutable:")) {
                let rest = rest.trim();
                in_block = rest.is_empty();
                let inner = rest.trim_start_matches('[').trim_end_matches(']');
                out.extend(inner.split(", ").filter(|s| !s.is_empty()).map(|s| s.trim_matches('"').to_string()));
            } else if in_block && line.starts_with("        - ") {
                out.push(t.trim_start_matches("- ").trim_matches('"').to_string());
            } else {
                in_block = false;
            }
        }
        out
    }

    #[test]
    fn path_heavy_counts_and_is_clean() {
        let text = generate_path_heavy(101, 7, 3);
        assert_eq!(count_selectors(&text), 101);
        let paths = path_values(&text);
        assert_eq!(paths.len(), 101 * 7);
        assert_eq!(paths.iter().collect::<HashSet<_>>().len(), 101 * 7);
        assert_clean(&text);
    }

    #[test]
    fn path_heavy_stays_within_the_distinct_pattern_limit() {
        // 2,200 x 30 = 66,000 patterns written, 65,536 distinct.
        let text = generate_path_heavy(2_200, 30, 1);
        let paths = path_values(&text);
        assert_eq!(paths.len(), 66_000);
        assert_eq!(paths.iter().collect::<HashSet<_>>().len(), MAX_PATH_PATTERNS);
        assert_clean(&text);
    }

    #[test]
    fn pool_patterns_are_distinct() {
        let all: HashSet<String> = (0..MAX_PATH_PATTERNS).map(pool_path).collect();
        assert_eq!(all.len(), MAX_PATH_PATTERNS);
    }
}
