//! `d4cc diff`: what promoting one compiled policy over another changes.
//!
//! In: two artifacts and their decision tables. Out: a [`DiffReport`] with
//!
//! - **selectors** added, removed or altered, matched by kind and name; a
//!   selector is altered when its conditions as written differ;
//! - **responses** added, removed or altered, matched by kind and by their
//!   sorted match and exclude names; a response is altered when its actions
//!   differ, and one whose match or exclude set changed shows as removed
//!   plus added. Responses with the same match and exclude sets always fire
//!   together, so their actions are taken as one union;
//! - **example decisions** whose verdict (actions and matched selector
//!   names) changes, found by deciding candidate events in candidate
//!   containers on both tables.
//!
//! # Candidates
//!
//! Both policies' selector metadata give the candidates, so that every
//! pattern either policy writes is exercised on both sides:
//!
//! - paths and executables: from every path pattern (`/a` gives `/a`;
//!   `/d/*` gives `/d/example`; `/d/**` gives `/d` (`/` for `/**`) and
//!   `/d/example/deeper`; `/p*` gives `/px`), plus `/` and
//!   [`UNLISTED_PATH`] for files, [`UNLISTED_EXECUTABLE`] for processes;
//! - file events: every file operation on every path, on the root file
//!   system, and also on a volume and a single-file mount when a selector of
//!   either policy ignores volumes; `execMemFd` once, without a path;
//! - process events: every executable with each name from the name
//!   patterns (`n` gives `n`, `p*` gives `px`) and with its own basename,
//!   names cut to the kernel's 15 bytes; both operations; interactive and
//!   not when a selector tests `sessionLeaderInteractive`, else not;
//! - containers: "any container" (no metadata), and per selector with
//!   container conditions one container that satisfies them (the first
//!   value of each condition, a prefix `p*` as `px`).
//!
//! Every event is decided in every container, unless there are more than
//! [`MAX_EVALUATIONS`] pairs: then that many pairs, evenly spread over the
//! candidates, are decided, and the report says so ([`DiffReport::capped`]).
//!
//! # Choosing examples
//!
//! Decisions whose verdicts differ fall into classes: two decisions are in
//! one class when both tables put them in the same dynamic class and the
//! same container row, so they differ in the same way for the same reason.
//! Examples are taken round-robin over the classes (the first decision of
//! every class, then the second, ...), so that `max_examples` shows as many
//! different changes as it can; the kept examples are then listed in a
//! fixed order: kind, operation (table order), path or executable (sorted),
//! volume or name and terminal, container ("any container" first).
//!
//! # Cost
//!
//! Each decision is the kernel's lookups for the event (once per event and
//! table) and a cached row entry per (container row, dynamic class): the
//! same steps as [`Tables::decide`], which is too slow to call for every
//! pair of a large policy, composed the same way. Everything in the report
//! is sorted; nothing depends on hash order.

use d4c_artifact::eval::{Tables, Verdict};
use d4c_artifact::event::{Container, Event, FileEvent, ProcessEvent, User, Volume};
use d4c_artifact::ops::{Actions, Kind, Operation};
use d4c_artifact::patterns::{PathPattern, TextPattern, MAX_USER_ID};
use d4c_artifact::tables::{ContainerConditions, KindMeta, UserConditions};
use d4c_artifact::{to_hex, Artifact};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// At most this many (container, event) pairs are decided (each on both
/// tables).
pub const MAX_EVALUATIONS: usize = 200_000;

/// A file path no pattern is expected to name.
pub const UNLISTED_PATH: &str = "/var/tmp/unlisted";

/// An executable no pattern is expected to name.
pub const UNLISTED_EXECUTABLE: &str = "/usr/bin/unlisted";

// The longest process name the kernel reports (`comm`), in bytes.
use d4c_artifact::normalize::COMM_BYTES;

/// What changed between two compiled policies.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DiffReport {
    /// The artifact promoted from.
    pub old: ArtifactSummary,
    /// The artifact promoted to.
    pub new: ArtifactSummary,
    /// Selectors added, removed or altered, by kind then name.
    pub selectors: Vec<SelectorChange>,
    /// Responses added, removed or altered, by kind, match and exclude names.
    pub responses: Vec<ResponseChange>,
    /// Example decisions whose verdict changes.
    pub examples: Vec<ExampleChange>,
    /// Whether more decisions change than `examples` shows.
    pub examples_truncated: bool,
    /// How many decisions change among those evaluated.
    pub changed_decisions: usize,
    /// How many (container, event) pairs were decided, each on both tables.
    pub evaluations: usize,
    /// How many (container, event) pairs the candidates make.
    pub candidates: usize,
    /// Whether only [`MAX_EVALUATIONS`] of the candidates were decided.
    pub capped: bool,
}

/// The header facts of one artifact.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ArtifactSummary {
    /// The policy's name.
    pub policy_name: String,
    /// The policy's revision.
    pub revision: u64,
    /// The content digest (SHA-256), in lowercase hexadecimal.
    pub content_digest: String,
}

/// How a selector or response changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the new policy.
    Added,
    /// Only in the old policy.
    Removed,
    /// In both, different.
    Altered,
}

/// A selector added, removed or altered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SelectorChange {
    /// `file` or `process`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// How it changed.
    pub change: Change,
    /// Its conditions as written in the old policy (empty when added).
    pub old: Vec<String>,
    /// Its conditions as written in the new policy (empty when removed).
    pub new: Vec<String>,
}

/// A response added, removed or altered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResponseChange {
    /// `file` or `process`.
    pub kind: String,
    /// The names it matches, sorted.
    pub matches: Vec<String>,
    /// The names it excludes, sorted.
    pub excludes: Vec<String>,
    /// How it changed.
    pub change: Change,
    /// Its actions in the old policy (`alert, block`), when there.
    pub old_actions: Option<String>,
    /// Its actions in the new policy, when there.
    pub new_actions: Option<String>,
}

/// One decision whose verdict changes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExampleChange {
    /// The event: `createFile /etc/passwd`, `exec /usr/bin/curl (name curl, interactive)`.
    pub event: String,
    /// The container: `image nginx, namespace prod`, or `any container`.
    pub container: String,
    /// The old verdict: `alert, block [etcChanges]`, or `allow`.
    pub old: String,
    /// The new verdict.
    pub new: String,
}

impl DiffReport {
    /// Whether nothing changes in meaning: no selector, response or
    /// decision changes (among the decisions checked).
    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
            && self.responses.is_empty()
            && self.examples.is_empty()
            && self.changed_decisions == 0
    }
}

/// Compares two compiled policies: `old` is the one in force, `new` the one
/// to promote. At most `max_examples` example decisions are kept.
pub fn diff(
    old: &Artifact<'_>,
    old_tables: &Tables,
    new: &Artifact<'_>,
    new_tables: &Tables,
    max_examples: usize,
) -> DiffReport {
    let examples = examples(old_tables, new_tables, max_examples);
    DiffReport {
        old: summary(old),
        new: summary(new),
        selectors: selector_changes(old_tables, new_tables),
        responses: response_changes(old_tables, new_tables),
        examples_truncated: examples.changed > examples.kept.len(),
        examples: examples.kept,
        changed_decisions: examples.changed,
        evaluations: examples.evaluations,
        candidates: examples.candidates,
        capped: examples.evaluations < examples.candidates,
    }
}

fn summary(artifact: &Artifact<'_>) -> ArtifactSummary {
    ArtifactSummary {
        policy_name: artifact.policy_name().to_string(),
        revision: artifact.header().revision,
        content_digest: to_hex(&artifact.header().content_digest),
    }
}

const KINDS: [Kind; 2] = [Kind::File, Kind::Process];

fn selector_changes(old: &Tables, new: &Tables) -> Vec<SelectorChange> {
    let mut changes = Vec::new();
    for kind in KINDS {
        let written = |tables: &Tables| -> BTreeMap<String, Vec<String>> {
            tables.kind(kind).selectors.iter().map(|s| (s.name.clone(), s.written.clone())).collect()
        };
        let (before, after) = (written(old), written(new));
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for name in names {
            let change = match (before.get(name), after.get(name)) {
                (Some(a), Some(b)) if a == b => continue,
                (Some(_), Some(_)) => Change::Altered,
                (Some(_), None) => Change::Removed,
                (None, _) => Change::Added,
            };
            changes.push(SelectorChange {
                kind: kind.as_str().to_string(),
                name: name.clone(),
                change,
                old: before.get(name).cloned().unwrap_or_default(),
                new: after.get(name).cloned().unwrap_or_default(),
            });
        }
    }
    changes
}

/// A response's identity: its sorted match and exclude names.
type ResponseKey = (Vec<String>, Vec<String>);

fn selector_name(meta: &KindMeta, index: u32) -> String {
    meta.selectors.get(index as usize).map_or_else(|| format!("#{index}"), |s| s.name.clone())
}

/// The responses of a kind by identity; responses of one identity always
/// fire together, so their actions unite.
fn responses_by_key(meta: &KindMeta) -> BTreeMap<ResponseKey, Actions> {
    let names = |indices: &[u32]| -> Vec<String> {
        let set: BTreeSet<String> = indices.iter().map(|&i| selector_name(meta, i)).collect();
        set.into_iter().collect()
    };
    let mut out: BTreeMap<ResponseKey, Actions> = BTreeMap::new();
    for response in &meta.responses {
        let entry = out.entry((names(&response.matches), names(&response.excludes))).or_default();
        *entry = entry.union(response.actions);
    }
    out
}

fn response_changes(old: &Tables, new: &Tables) -> Vec<ResponseChange> {
    let mut changes = Vec::new();
    for kind in KINDS {
        let (before, after) = (responses_by_key(old.kind(kind)), responses_by_key(new.kind(kind)));
        let keys: BTreeSet<&ResponseKey> = before.keys().chain(after.keys()).collect();
        for key in keys {
            let (a, b) = (before.get(key), after.get(key));
            let change = match (a, b) {
                (Some(a), Some(b)) if a == b => continue,
                (Some(_), Some(_)) => Change::Altered,
                (Some(_), None) => Change::Removed,
                (None, _) => Change::Added,
            };
            changes.push(ResponseChange {
                kind: kind.as_str().to_string(),
                matches: key.0.clone(),
                excludes: key.1.clone(),
                change,
                old_actions: a.map(ToString::to_string),
                new_actions: b.map(ToString::to_string),
            });
        }
    }
    changes
}

// ---------------------------------------------------------------------------
// Candidates

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

/// Paths a path pattern matches (and, for `/d/**`, its boundary `/d`).
fn path_instances(pattern: &PathPattern, out: &mut BTreeSet<String>) {
    match pattern {
        PathPattern::Exact(path) => {
            out.insert(path.clone());
        }
        PathPattern::Children(dir) => {
            out.insert(format!("{dir}/example"));
        }
        PathPattern::Recursive(dir) => {
            out.insert(if dir.is_empty() { "/".to_string() } else { dir.clone() });
            out.insert(format!("{dir}/example/deeper"));
        }
        PathPattern::Prefix(prefix) => {
            out.insert(format!("{prefix}x"));
        }
    }
}

/// A value a text pattern matches.
fn text_instance(pattern: &TextPattern) -> String {
    match pattern {
        TextPattern::Exact(value) => value.clone(),
        TextPattern::Prefix(prefix) => format!("{prefix}x"),
    }
}

/// A container that satisfies `conditions`, or `None` when they are empty.
fn container_for(conditions: &ContainerConditions) -> Option<Container> {
    if *conditions == ContainerConditions::default() {
        return None;
    }
    let first = |patterns: &Option<Vec<TextPattern>>| patterns.as_ref().and_then(|p| p.first()).map(text_instance);
    let labels = conditions.pod_labels.as_ref().and_then(|l| l.first());
    Some(Container {
        image_full_name: first(&conditions.image_full_name),
        image_name: first(&conditions.image_name),
        image_tag: first(&conditions.image_tag),
        cluster_id: first(&conditions.cluster_id),
        cluster_name: first(&conditions.cluster_name),
        namespace: first(&conditions.namespace),
        pod_name: first(&conditions.pod_name),
        labels: labels.map(|l| vec![(l.key.clone(), text_instance(&l.value))]).unwrap_or_default(),
    })
}

/// A container as a reviewer reads it.
fn container_text(container: &Container) -> String {
    let mut parts = Vec::new();
    let mut field = |label: &str, value: &Option<String>| {
        if let Some(value) = value {
            parts.push(format!("{label} {value}"));
        }
    };
    field("full image", &container.image_full_name);
    field("image", &container.image_name);
    field("tag", &container.image_tag);
    field("cluster id", &container.cluster_id);
    field("cluster", &container.cluster_name);
    field("namespace", &container.namespace);
    field("pod", &container.pod_name);
    parts.extend(container.labels.iter().map(|(k, v)| format!("label {k}:{v}")));
    if parts.is_empty() {
        "any container".to_string()
    } else {
        parts.join(", ")
    }
}

/// An ordering key for containers (which are not `Ord`).
type ContainerKey = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
);

fn container_key(c: &Container) -> ContainerKey {
    (
        c.image_full_name.clone(),
        c.image_name.clone(),
        c.image_tag.clone(),
        c.cluster_id.clone(),
        c.cluster_name.clone(),
        c.namespace.clone(),
        c.pod_name.clone(),
        c.labels.clone(),
    )
}

/// An event as a reviewer reads it.
fn event_text(event: &Event) -> String {
    match event {
        Event::File(f) => {
            let mut text = f.operation.name().to_string();
            if let Some(path) = &f.path {
                text.push(' ');
                text.push_str(path);
            }
            match f.volume {
                Volume::RootFs => {}
                Volume::Volume => text.push_str(" (on a volume mount)"),
                Volume::VolumeFile => text.push_str(" (on a single-file mount)"),
            }
            text
        }
        Event::Process(p) => {
            let interactive = if p.interactive { ", interactive" } else { "" };
            let user = match (&p.user, p.user == User::root()) {
                (_, true) => String::new(),
                (User { id, name: Some(name) }, false) => format!(", user {id} `{name}`"),
                (User { id, name: None }, false) => format!(", user {id} without a name"),
            };
            format!("{} {} (name {}{interactive}{user})", p.operation.name(), p.executable, p.name)
        }
        Event::Network(n) => n.describe(),
    }
}

/// The acting users worth trying: root (what processes run as unless told
/// otherwise), each id a `processUserId` names (without a name: a
/// container's passwd may name it anything), and for each
/// `processUserName` pattern a user of that name, with an id no condition
/// names. Without user conditions, root alone.
fn users(old: &Tables, new: &Tables) -> Vec<User> {
    let conditions: Vec<&UserConditions> =
        [old, new].into_iter().flat_map(|t| t.kind(Kind::Process).selectors.iter().map(|s| &s.user)).collect();
    let ids: BTreeSet<u32> = conditions.iter().filter_map(|c| c.ids.as_ref()).flatten().copied().collect();
    let names: BTreeSet<String> =
        conditions.iter().filter_map(|c| c.names.as_ref()).flatten().map(text_instance).collect();
    let mut users = vec![User::root()];
    users.extend(ids.iter().filter(|&&id| id != 0).map(|&id| User { id, name: None }));
    // Fresh ids for the names, counting down from the largest: an id that
    // no condition names, so that the name alone decides.
    let mut fresh = (0..=MAX_USER_ID).rev().filter(|id| !ids.contains(id));
    for name in names.into_iter().filter(|n| n != "root") {
        if let Some(id) = fresh.next() {
            users.push(User { id, name: Some(name) });
        }
    }
    users
}

/// The candidate events, enumerated by index without being built: file
/// events first (path, operation, volume), then `execMemFd`, then process
/// events (executable, name, operation, terminal).
struct Events {
    paths: Vec<String>,
    file_ops: Vec<Operation>,
    volumes: Vec<Volume>,
    mem_fd: bool,
    exes: Vec<String>,
    /// The names from name patterns, sorted.
    names: Vec<String>,
    /// Per executable: its basename, when no name pattern gives it.
    own_names: Vec<Option<String>>,
    /// Per executable: the index of its first event among process events.
    starts: Vec<usize>,
    process_ops: Vec<Operation>,
    ttys: Vec<bool>,
    /// The acting users: root, then one per id and name a user condition
    /// names (see [`users`]).
    users: Vec<User>,
    file_count: usize,
    process_count: usize,
}

impl Events {
    fn new(old: &Tables, new: &Tables) -> Events {
        let both = [old, new];
        let selectors = |kind: Kind| both.into_iter().flat_map(move |t| t.kind(kind).selectors.iter());

        let mut paths: BTreeSet<String> = ["/".to_string(), UNLISTED_PATH.to_string()].into();
        selectors(Kind::File).flat_map(|s| s.paths.iter().flatten()).for_each(|p| path_instances(p, &mut paths));
        let ignores = selectors(Kind::File).any(|s| s.dynamic.ignore_volume_mounts || s.dynamic.ignore_volume_files);
        let volumes = if ignores { Volume::ALL.to_vec() } else { vec![Volume::RootFs] };
        let all_file_ops = Operation::of_kind(Kind::File);
        let file_ops: Vec<Operation> = all_file_ops.iter().copied().filter(|o| *o != Operation::ExecMemFd).collect();
        let mem_fd = all_file_ops.contains(&Operation::ExecMemFd);

        let mut exes: BTreeSet<String> = [UNLISTED_EXECUTABLE.to_string()].into();
        selectors(Kind::Process).flat_map(|s| s.paths.iter().flatten()).for_each(|p| path_instances(p, &mut exes));
        let names: BTreeSet<String> = selectors(Kind::Process)
            .flat_map(|s| s.names.iter().flatten())
            .map(|p| cut(&text_instance(p), COMM_BYTES).to_string())
            .collect();
        let exes: Vec<String> = exes.into_iter().collect();
        let own_names: Vec<Option<String>> = exes
            .iter()
            .map(|exe| {
                let base = cut(exe.rsplit('/').next().unwrap_or(exe), COMM_BYTES);
                (!names.contains(base)).then(|| base.to_string())
            })
            .collect();
        let interactive = selectors(Kind::Process).any(|s| s.dynamic.interactive.is_some());
        let ttys = if interactive { vec![false, true] } else { vec![false] };
        let process_ops = Operation::of_kind(Kind::Process).to_vec();
        let users = users(old, new);

        let per_name = process_ops.len().saturating_mul(ttys.len()).saturating_mul(users.len());
        let mut starts = Vec::with_capacity(exes.len());
        let mut process_count = 0usize;
        for own in &own_names {
            starts.push(process_count);
            let slots = names.len().saturating_add(usize::from(own.is_some()));
            process_count = process_count.saturating_add(slots.saturating_mul(per_name));
        }
        let file_count = paths
            .len()
            .saturating_mul(file_ops.len())
            .saturating_mul(volumes.len())
            .saturating_add(usize::from(mem_fd));
        Events {
            paths: paths.into_iter().collect(),
            file_ops,
            volumes,
            mem_fd,
            exes,
            names: names.into_iter().collect(),
            own_names,
            starts,
            process_ops,
            ttys,
            users,
            file_count,
            process_count,
        }
    }

    fn len(&self) -> usize {
        self.file_count.saturating_add(self.process_count)
    }

    /// The event of index `i` (`None` past the end), with its place in the
    /// display order.
    fn get(&self, i: usize) -> Option<(Event, Order)> {
        if i < self.file_count {
            let per_path = self.file_ops.len().saturating_mul(self.volumes.len());
            let on_paths = self.paths.len().saturating_mul(per_path);
            if i >= on_paths {
                let operation = Operation::ExecMemFd;
                let order = (Kind::File, operation.table_index(), 0, 0);
                return self.mem_fd.then_some((
                    Event::File(FileEvent { operation, path: None, volume: Volume::RootFs, directory: false }),
                    order,
                ));
            }
            let p = i.checked_div(per_path)?;
            let rest = i.checked_rem(per_path)?;
            let operation = *self.file_ops.get(rest.checked_div(self.volumes.len())?)?;
            let v = rest.checked_rem(self.volumes.len())?;
            let event = FileEvent {
                operation,
                path: Some(self.paths.get(p)?.clone()),
                volume: *self.volumes.get(v)?,
                directory: false,
            };
            return Some((Event::File(event), (Kind::File, operation.table_index(), p, v)));
        }
        let j = i - self.file_count;
        if j >= self.process_count {
            return None;
        }
        let e = self.starts.partition_point(|&s| s <= j).checked_sub(1)?;
        let local = j - self.starts.get(e)?;
        let per_op = self.ttys.len().saturating_mul(self.users.len());
        let per_name = self.process_ops.len().saturating_mul(per_op);
        let slot = local.checked_div(per_name)?;
        let rest = local.checked_rem(per_name)?;
        let own = self.own_names.get(e)?;
        let name = match (own, slot) {
            (Some(own), 0) => own.clone(),
            (Some(_), _) => self.names.get(slot - 1)?.clone(),
            (None, _) => self.names.get(slot)?.clone(),
        };
        let operation = *self.process_ops.get(rest.checked_div(per_op)?)?;
        let within = rest.checked_rem(per_op)?;
        let t = within.checked_div(self.users.len())?;
        let u = within.checked_rem(self.users.len())?;
        let interactive = *self.ttys.get(t)?;
        let user = self.users.get(u)?.clone();
        let event = ProcessEvent { operation, executable: self.exes.get(e)?.clone(), name, interactive, user };
        let order = (Kind::Process, operation.table_index(), e, slot.saturating_mul(per_op).saturating_add(within));
        Some((Event::Process(event), order))
    }
}

/// The candidate containers: "any container" first, then one per selector
/// with container conditions, deduplicated, in a fixed order.
fn containers(old: &Tables, new: &Tables) -> Vec<Container> {
    let mut found: BTreeMap<(String, ContainerKey), Container> = BTreeMap::new();
    for tables in [old, new] {
        for kind in KINDS {
            for container in tables.kind(kind).selectors.iter().filter_map(|s| container_for(&s.container)) {
                found.entry((container_text(&container), container_key(&container))).or_insert(container);
            }
        }
    }
    std::iter::once(Container::default()).chain(found.into_values().filter(|c| *c != Container::default())).collect()
}

// ---------------------------------------------------------------------------
// Evaluation

/// A verdict with the matched selectors by name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Named<'t> {
    actions: Actions,
    /// Sorted, distinct.
    names: Vec<&'t str>,
}

impl Named<'_> {
    fn text(&self) -> String {
        if self.names.is_empty() {
            self.actions.to_string()
        } else {
            format!("{} [{}]", self.actions, self.names.join(", "))
        }
    }
}

/// One side's tables with the per-container rows and a cache of row
/// entries.
struct Side<'t> {
    tables: &'t Tables,
    /// Per kind: container index -> row id.
    file_rows: Vec<usize>,
    process_rows: Vec<usize>,
    /// Per kind: row id -> which selectors hold for the container.
    file_row_sets: Vec<Vec<bool>>,
    process_row_sets: Vec<Vec<bool>>,
    users: Vec<User>,
    /// Per dynamic class: which selectors hold their per-event conditions.
    members: HashMap<(Kind, u32), Vec<bool>>,
    verdicts: HashMap<(Kind, usize, u32), Named<'t>>,
}

impl<'t> Side<'t> {
    /// `users`: the process events' acting users ([`Events::users`]):
    /// process rows are per container and user.
    fn new(tables: &'t Tables, containers: &[Container], users: &[User]) -> Side<'t> {
        let rows = |kind: Kind| {
            let mut ids: BTreeMap<Vec<bool>, usize> = BTreeMap::new();
            let mut rows = Vec::with_capacity(containers.len());
            for container in containers {
                let sets: Vec<Vec<bool>> = match kind {
                    Kind::File => vec![tables.container_selectors(kind, container)],
                    Kind::Process | Kind::Network => {
                        users.iter().map(|u| tables.selectors_for(kind, container, Some(u))).collect()
                    }
                };
                for set in sets {
                    let next = ids.len();
                    rows.push(*ids.entry(set).or_insert(next));
                }
            }
            let mut sets = vec![Vec::new(); ids.len()];
            for (set, id) in ids {
                if let Some(slot) = sets.get_mut(id) {
                    *slot = set;
                }
            }
            (rows, sets)
        };
        let (file_rows, file_row_sets) = rows(Kind::File);
        let (process_rows, process_row_sets) = rows(Kind::Process);
        Side {
            tables,
            users: users.to_vec(),
            file_rows,
            process_rows,
            file_row_sets,
            process_row_sets,
            members: HashMap::new(),
            verdicts: HashMap::new(),
        }
    }

    /// The event's dynamic class: the kernel's lookups.
    fn dyn_class(&self, event: &Event) -> u32 {
        let t = self.tables;
        match event {
            Event::File(f) => {
                let path_class = f.path.as_deref().map_or(0, |p| t.path_class(t.roots.file_path_root, p));
                t.file_dyn_class(path_class, f.operation.table_index(), f.volume.table_index())
            }
            Event::Process(p) => {
                let exe_class = t.path_class(t.roots.exe_root, &p.executable);
                let name_class = t.name_class(&p.name);
                t.process_dyn_class(exe_class, p.operation.table_index(), p.interactive, name_class)
            }
            Event::Network(_) => t.dynamic_class(event).1,
        }
    }

    /// The row of `event` (of `kind`) in container `container`: a process
    /// event's is its container's and acting user's.
    fn row(&self, kind: Kind, container: usize, event: &Event) -> usize {
        match (kind, event) {
            (Kind::Process, Event::Process(p)) => {
                let u = self.users.iter().position(|u| *u == p.user).unwrap_or(0);
                let at = container.saturating_mul(self.users.len()).saturating_add(u);
                self.process_rows.get(at).copied().unwrap_or(0)
            }
            _ => self.file_rows.get(container).copied().unwrap_or(0),
        }
    }

    /// The row entry of `class` in row `row`: what the kernel reads.
    fn verdict(&mut self, kind: Kind, row: usize, class: u32) -> &Named<'t> {
        let tables = self.tables;
        let in_container = match kind {
            Kind::File => self.file_row_sets.get(row).map_or(&[][..], Vec::as_slice),
            Kind::Process => self.process_row_sets.get(row).map_or(&[][..], Vec::as_slice),
            // No network rows: the tables hold no network rules yet.
            Kind::Network => &[][..],
        };
        let members = &mut self.members;
        self.verdicts.entry((kind, row, class)).or_insert_with(|| {
            let members = members.entry((kind, class)).or_insert_with(|| tables.dyn_members(kind, class));
            named(tables, kind, &tables.row_entry(kind, members, in_container))
        })
    }
}

fn named<'t>(tables: &'t Tables, kind: Kind, verdict: &Verdict) -> Named<'t> {
    let meta = tables.kind(kind);
    let mut names: Vec<&str> =
        verdict.matched.iter().map(|&i| meta.selectors.get(i).map_or("#unknown", |s| s.name.as_str())).collect();
    names.sort_unstable();
    names.dedup();
    Named { actions: verdict.actions, names }
}

/// An event's place in the display order: kind, operation, subject (the
/// path or executable, in sorted order), detail (volume; name and terminal).
type Order = (Kind, usize, usize, usize);

/// Decisions in one class differ for the same reason: the same dynamic
/// class and container row on each side.
type ClassKey = (Kind, usize, u32, usize, u32);

/// A decision whose verdict changes: its class, its place in the display
/// order (with the container), and the event's index.
type Changed = (ClassKey, (Order, usize), usize);

struct Examples {
    kept: Vec<ExampleChange>,
    changed: usize,
    evaluations: usize,
    candidates: usize,
}

fn examples(old: &Tables, new: &Tables, max_examples: usize) -> Examples {
    let events = Events::new(old, new);
    let containers = containers(old, new);
    let (mut before, mut after) =
        (Side::new(old, &containers, &events.users), Side::new(new, &containers, &events.users));

    let width = containers.len().max(1);
    let candidates = events.len().saturating_mul(containers.len());
    let evaluations = candidates.min(MAX_EVALUATIONS);
    // The pair of index `k`: event `k / width`, container rotated by the
    // event so that an even spread of `k` does not keep one container.
    let pair = |k: usize| -> (usize, usize) {
        let e = k / width;
        (e, (k % width + e % width) % width)
    };
    let index = |i: usize| -> usize {
        if candidates <= MAX_EVALUATIONS {
            i
        } else {
            usize::try_from(i as u128 * candidates as u128 / MAX_EVALUATIONS as u128).unwrap_or(usize::MAX)
        }
    };

    let mut changed: Vec<Changed> = Vec::new();
    let mut current: Option<(usize, Kind, Order, u32, u32, Event)> = None;
    for i in 0..evaluations {
        let (e, c) = pair(index(i));
        if current.as_ref().is_none_or(|(at, ..)| *at != e) {
            current = events.get(e).map(|(event, order)| {
                (e, event.kind(), order, before.dyn_class(&event), after.dyn_class(&event), event)
            });
        }
        let Some((_, kind, order, old_class, new_class, event)) = &current else { continue };
        let (kind, order, old_class, new_class) = (*kind, *order, *old_class, *new_class);
        let (old_row, new_row) = (before.row(kind, c, event), after.row(kind, c, event));
        if before.verdict(kind, old_row, old_class) != after.verdict(kind, new_row, new_class) {
            changed.push(((kind, old_row, old_class, new_row, new_class), (order, c), e));
        }
    }

    // Round-robin over the classes (rank within the class first), then in
    // display order.
    changed.sort_unstable();
    let mut ranked: Vec<(usize, (Order, usize), usize, ClassKey)> = Vec::with_capacity(changed.len());
    let mut rank = 0;
    let mut previous: Option<ClassKey> = None;
    for (class, order, e) in &changed {
        rank = if previous == Some(*class) { rank + 1 } else { 0 };
        previous = Some(*class);
        ranked.push((rank, *order, *e, *class));
    }
    ranked.sort_unstable();
    ranked.truncate(max_examples);
    ranked.sort_unstable_by_key(|(_, order, ..)| *order);

    let kept = ranked
        .into_iter()
        .filter_map(|(_, (_, c), e, (kind, old_row, old_class, new_row, new_class))| {
            let (event, _) = events.get(e)?;
            Some(ExampleChange {
                event: event_text(&event),
                container: containers.get(c).map(container_text).unwrap_or_default(),
                old: before.verdict(kind, old_row, old_class).text(),
                new: after.verdict(kind, new_row, new_class).text(),
            })
        })
        .collect();
    Examples { kept, changed: changed.len(), evaluations, candidates }
}

// ---------------------------------------------------------------------------
// Human output

fn sign(change: Change) -> char {
    match change {
        Change::Added => '+',
        Change::Removed => '-',
        Change::Altered => '~',
    }
}

fn response_text(kind: &str, matches: &[String], excludes: &[String]) -> String {
    let mut text = format!("{kind} match [{}]", matches.join(", "));
    if !excludes.is_empty() {
        text.push_str(&format!(" exclude [{}]", excludes.join(", ")));
    }
    text
}

/// The condition key of a written condition (`targetFilePath` of
/// `targetFilePath: [/etc/**]`).
fn condition_key(line: &str) -> &str {
    line.split_once(':').map_or(line, |(key, _)| key)
}

/// The lines of an altered selector: unchanged conditions indented, the old
/// form of a changed one with `-` followed by its new form with `+`.
fn condition_lines(old: &[String], new: &[String], out: &mut String) {
    for line in old {
        if new.contains(line) {
            out.push_str(&format!("        {line}\n"));
            continue;
        }
        out.push_str(&format!("      - {line}\n"));
        let key = condition_key(line);
        for replacement in new.iter().filter(|n| condition_key(n) == key && !old.contains(n)) {
            out.push_str(&format!("      + {replacement}\n"));
        }
    }
    let old_keys: BTreeSet<&str> = old.iter().map(|l| condition_key(l)).collect();
    for line in new.iter().filter(|n| !old.contains(n) && !old_keys.contains(condition_key(n))) {
        out.push_str(&format!("      + {line}\n"));
    }
}

/// The report as plain text, for a reviewer.
pub fn render_human(report: &DiffReport) -> String {
    // The names, patterns and values come from the artifacts: escaped, so
    // that a carriage return or an escape sequence in them shows as such.
    d4c_artifact::display::escape_control_lines(&render_text(report)).into_owned()
}

fn render_text(report: &DiffReport) -> String {
    let mut out = String::new();
    let side = |s: &ArtifactSummary| {
        format!("{} revision {} (content sha256 {})", s.policy_name, s.revision, s.content_digest)
    };
    out.push_str(&format!("old: {}\nnew: {}\n", side(&report.old), side(&report.new)));
    if report.is_empty() {
        out.push_str(&format!("\nno change in meaning ({})\n", checked_text(report)));
        return out;
    }

    out.push_str("\nselectors\n");
    if report.selectors.is_empty() {
        out.push_str("  no change\n");
    }
    for s in &report.selectors {
        out.push_str(&format!("  {} {} {}\n", sign(s.change), s.kind, s.name));
        match s.change {
            Change::Added => s.new.iter().for_each(|l| out.push_str(&format!("      + {l}\n"))),
            Change::Removed => s.old.iter().for_each(|l| out.push_str(&format!("      - {l}\n"))),
            Change::Altered => condition_lines(&s.old, &s.new, &mut out),
        }
    }

    out.push_str("\nresponses\n");
    if report.responses.is_empty() {
        out.push_str("  no change\n");
    }
    for r in &report.responses {
        let what = response_text(&r.kind, &r.matches, &r.excludes);
        let actions = match (&r.old_actions, &r.new_actions) {
            (Some(a), Some(b)) => format!("{a} -> {b}"),
            (Some(a), None) | (None, Some(a)) => a.clone(),
            (None, None) => String::new(),
        };
        out.push_str(&format!("  {} {what}: {actions}\n", sign(r.change)));
    }

    out.push_str("\ndecisions that change\n");
    if report.changed_decisions == 0 {
        out.push_str(&format!("  none ({})\n", checked_text(report)));
        return out;
    }
    for e in &report.examples {
        out.push_str(&format!("  {} in {}: {} -> {}\n", e.event, e.container, e.old, e.new));
    }
    let shown = if report.examples_truncated {
        format!("{} of {} changed decisions shown", report.examples.len(), report.changed_decisions)
    } else {
        format!("{} changed decisions", report.changed_decisions)
    };
    out.push_str(&format!("  ({shown}; {})\n", checked_text(report)));
    out
}

fn checked_text(report: &DiffReport) -> String {
    if report.capped {
        format!(
            "checked {} of {} candidate decisions, evenly spread: the check is capped at {MAX_EVALUATIONS}",
            report.evaluations, report.candidates
        )
    } else {
        format!("checked {} candidate decisions", report.evaluations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile, CompileOptions};
    use crate::lint::lint_bytes;
    use d4c_artifact::{aligned_copy, AlignedBytes};
    use d4c_testgen::generate_policy;

    fn compiled(text: &str, revision: u64) -> AlignedBytes {
        let (_, output) = lint_bytes("p.yaml", text.as_bytes().to_vec());
        assert!(!output.has_errors(), "{:?}", output.diagnostics);
        let options = CompileOptions { policy_name: "p".into(), revision, created_unix: None };
        aligned_copy(&compile(text.as_bytes(), &output.checked.unwrap(), &options).unwrap())
    }

    fn tables(bytes: &AlignedBytes) -> Tables {
        Tables::read(&Artifact::parse(bytes).unwrap()).unwrap()
    }

    /// The cached decisions are `Tables::decide`'s, for every candidate
    /// pair, and the candidates are distinct.
    #[test]
    fn cached_decisions_are_the_tables_decisions() {
        for seed in 0..12 {
            let (a, b) = (compiled(&generate_policy(12, seed), 1), compiled(&generate_policy(12, seed + 100), 2));
            let (old, new) = (tables(&a), tables(&b));
            let events = Events::new(&old, &new);
            let containers = containers(&old, &new);
            assert!(events.len() * containers.len() <= MAX_EVALUATIONS, "seed {seed}: the test wants every pair");
            let (mut before, mut after) =
                (Side::new(&old, &containers, &events.users), Side::new(&new, &containers, &events.users));
            let mut seen = BTreeSet::new();
            for e in 0..events.len() {
                let (event, _) = events.get(e).unwrap();
                assert!(seen.insert(event_text(&event)), "seed {seed}: {} twice", event_text(&event));
                let kind = event.kind();
                for (c, container) in containers.iter().enumerate() {
                    for (side, tables) in [(&mut before, &old), (&mut after, &new)] {
                        let (row, class) = (side.row(kind, c, &event), side.dyn_class(&event));
                        let want = named(tables, kind, &tables.decide(container, &event));
                        assert_eq!(*side.verdict(kind, row, class), want, "seed {seed}: {event:?} in {container:?}");
                    }
                }
            }
            assert!(events.get(events.len()).is_none());
        }
    }

    /// Large policies: the check is capped, spread over every container,
    /// and still fast.
    #[test]
    fn large_policies_are_capped() {
        const N: usize = 100;
        let (a, b) = (compiled(&generate_policy(N, 1), 1), compiled(&generate_policy(N, 2), 2));
        let (old, new) = (tables(&a), tables(&b));
        let (old_artifact, new_artifact) = (Artifact::parse(&a).unwrap(), Artifact::parse(&b).unwrap());
        let started = std::time::Instant::now();
        let report = diff(&old_artifact, &old, &new_artifact, &new, 20);
        let took = started.elapsed();
        assert!(report.capped && report.evaluations == MAX_EVALUATIONS && report.candidates > MAX_EVALUATIONS);
        assert!(report.examples.len() == 20 && report.examples_truncated);
        assert!(render_human(&report).contains(&format!("checked {MAX_EVALUATIONS} of {}", report.candidates)));
        let containers: BTreeSet<&str> = report.examples.iter().map(|e| e.container.as_str()).collect();
        assert!(containers.len() > 1, "{containers:?}");
        eprintln!(
            "{N} selectors: {} candidates, {} evaluated, {} changed, {took:?}",
            report.candidates, report.evaluations, report.changed_decisions
        );
    }

    #[test]
    fn names_are_cut_on_character_boundaries() {
        assert_eq!(cut("abcdefghijklmnopq", COMM_BYTES), "abcdefghijklmno");
        assert_eq!(cut("ééééééééé", COMM_BYTES), "ééééééé");
        assert_eq!(cut("sh", COMM_BYTES), "sh");
    }
}
