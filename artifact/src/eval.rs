//! The table evaluator: decides an event from an artifact's tables exactly
//! as the kernel will, and explains the decision as the runtime will.
//!
//! [`Tables`] is the in-memory form of an artifact's decision sections. The
//! compiler builds one and writes it ([`Tables::write_sections`]); the runtime
//! and `d4cc test` read one back ([`Tables::read`]), which checks every index
//! so that no lookup can go out of bounds, whatever the artifact holds.

use crate::event::{Container, Event, User, Volume};
use crate::ops::{Actions, Kind, Operation};
use crate::tables::{
    kind, ComponentKeyLong, ComponentKeyShort, ContainerConditions, DfaState, EdgeKey, KindMeta, Meta, Roots,
    UserConditions, FILE_OPS, LONG_COMPONENT_BYTES, PROCESS_OPS, SHORT_COMPONENT_BYTES, STATE_SETTLED, VOLUMES,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use zerocopy::IntoBytes;

/// The outcome of one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The union of the fired responses' actions (empty: nothing happens).
    pub actions: Actions,
    /// Indices (into the kind's selectors) of the matched selectors of the
    /// fired responses.
    pub matched: BTreeSet<usize>,
}

impl Verdict {
    /// Unites two verdicts (an operation that makes two events).
    pub fn union(mut self, other: Verdict) -> Verdict {
        self.actions = self.actions.union(other.actions);
        self.matched.extend(other.matched);
        self
    }
}

/// An artifact's decision tables, in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    /// Roots and dimensions.
    pub roots: Roots,
    /// Automaton states.
    pub states: Vec<DfaState>,
    /// Component strings, by id.
    pub components: Vec<String>,
    /// Exact edges.
    pub edges: Vec<(EdgeKey, u32)>,
    /// Prefix edges.
    pub prefix_edges: Vec<(EdgeKey, u32)>,
    /// `file_path_classes * 18` file dynamic classes.
    pub file_classes: Vec<u32>,
    /// `exe_classes * 4` process intermediate classes.
    pub process_classes_a: Vec<u32>,
    /// `process_a_classes * name_classes` process dynamic classes.
    pub process_classes_d: Vec<u32>,
    /// Userspace metadata.
    pub meta: Meta,
    /// Lookup indices built by [`Tables::index`]: not serialized.
    index: Index,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Index {
    components: HashMap<String, u32>,
    edges: HashMap<(u32, u32), u32>,
    prefix_edges: HashMap<(u32, u32), u32>,
}

/// Why an artifact's tables cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablesError(pub String);

impl std::fmt::Display for TablesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TablesError {}

fn bad(message: impl Into<String>) -> TablesError {
    TablesError(message.into())
}

impl Tables {
    /// Assembles tables from their parts and builds the lookup indices.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        roots: Roots,
        states: Vec<DfaState>,
        components: Vec<String>,
        edges: Vec<(EdgeKey, u32)>,
        prefix_edges: Vec<(EdgeKey, u32)>,
        file_classes: Vec<u32>,
        process_classes_a: Vec<u32>,
        process_classes_d: Vec<u32>,
        meta: Meta,
    ) -> Result<Tables, TablesError> {
        let mut tables = Tables {
            roots,
            states,
            components,
            edges,
            prefix_edges,
            file_classes,
            process_classes_a,
            process_classes_d,
            meta,
            index: Index::default(),
        };
        tables.validate()?;
        tables.index = Index {
            components: tables.components.iter().enumerate().map(|(i, c)| (c.clone(), i as u32)).collect(),
            edges: tables.edges.iter().map(|(k, v)| ((k.state, k.component), *v)).collect(),
            prefix_edges: tables.prefix_edges.iter().map(|(k, v)| ((k.state, k.component), *v)).collect(),
        };
        Ok(tables)
    }

    /// Checks every index against what it indexes, so that evaluation can
    /// never go out of bounds.
    fn validate(&self) -> Result<(), TablesError> {
        let r = &self.roots;
        let states = self.states.len() as u64;
        let m = &self.meta;
        for (name, root) in [("file path", r.file_path_root), ("executable", r.exe_root), ("name", r.name_root)] {
            if u64::from(root) >= states {
                return Err(bad(format!("the {name} root state {root} is past the {states} states")));
            }
        }
        let counts = [
            ("file path classes", r.file_path_classes, m.file_path_classes.len()),
            ("file path class kinds", r.file_path_classes, m.file_path_subtree.len()),
            ("executable classes", r.exe_classes, m.exe_classes.len()),
            ("name classes", r.name_classes, m.name_classes.len()),
            ("process intermediate classes", r.process_a_classes, m.process_a_reps.len()),
            ("file dynamic classes", r.file_dyn_classes, m.file_dyn_reps.len()),
            ("process dynamic classes", r.process_dyn_classes, m.process_dyn_reps.len()),
        ];
        for (name, declared, actual) in counts {
            if declared as usize != actual {
                return Err(bad(format!("the roots declare {declared} {name}, the metadata has {actual}")));
            }
        }
        let max_class = r.file_path_classes.max(r.exe_classes).max(r.name_classes);
        for (i, s) in self.states.iter().enumerate() {
            if u64::from(s.default_next) >= states
                || s.accept_class >= max_class.max(1)
                || s.subtree_class >= r.file_path_classes.max(1)
            {
                return Err(bad(format!("state {i} points past the tables")));
            }
        }
        for (k, v) in self.edges.iter().chain(&self.prefix_edges) {
            if u64::from(k.state) >= states || u64::from(*v) >= states || k.component as usize >= self.components.len()
            {
                return Err(bad(format!("edge {} --{}--> {} points past the tables", k.state, k.component, v)));
            }
        }
        // A settled state's every successor is settled with its classes
        // (`STATE_SETTLED`): else a walk that stops there would decide a
        // path by the wrong class.
        let settled = |i: u32| self.states.get(i as usize).filter(|s| s.flags & STATE_SETTLED != 0);
        let same = |a: &DfaState, b: &DfaState| (a.accept_class, a.subtree_class) == (b.accept_class, b.subtree_class);
        let successors = self
            .edges
            .iter()
            .chain(&self.prefix_edges)
            .map(|(k, v)| (k.state, *v))
            .chain((0u32..).zip(self.states.iter().map(|s| s.default_next)));
        for (from, to) in successors {
            if let Some(a) = settled(from) {
                if !settled(to).is_some_and(|b| same(a, b)) {
                    return Err(bad(format!("state {from} is marked settled, but its successor {to} is not alike")));
                }
            }
        }
        let sizes = [
            ("file classes", self.file_classes.len(), r.file_path_classes as usize * FILE_OPS * VOLUMES),
            ("process classes a", self.process_classes_a.len(), r.exe_classes as usize * PROCESS_OPS * 2),
            ("process classes d", self.process_classes_d.len(), r.process_a_classes as usize * r.name_classes as usize),
        ];
        for (name, len, want) in sizes {
            if len != want {
                return Err(bad(format!("the {name} table has {len} entries, the dimensions say {want}")));
            }
        }
        if self.file_classes.iter().any(|&d| d >= r.file_dyn_classes)
            || self.process_classes_a.iter().any(|&a| a >= r.process_a_classes)
            || self.process_classes_d.iter().any(|&d| d >= r.process_dyn_classes)
        {
            return Err(bad("a class table holds a class past its count"));
        }
        for (kind_meta, classes) in
            [(&m.file, &m.file_path_classes), (&m.process, &m.exe_classes), (&m.process, &m.name_classes)]
        {
            let n = kind_meta.selectors.len() as u32;
            if classes.iter().flatten().any(|&s| s >= n) {
                return Err(bad("a class lists a selector past the selectors"));
            }
        }
        for kind_meta in [&m.file, &m.process] {
            let n = kind_meta.selectors.len() as u32;
            if kind_meta.responses.iter().flat_map(|r| r.matches.iter().chain(&r.excludes)).any(|&s| s >= n) {
                return Err(bad("a response names a selector past the selectors"));
            }
        }
        // User conditions are the process selectors' (their ids are looked
        // up by binary search: sorted, no repeats, no `(uid_t)-1`).
        if m.file.selectors.iter().any(|s| !s.user.is_empty()) {
            return Err(bad("a file selector has a user condition"));
        }
        let ids_ok = |ids: &Vec<u32>| {
            ids.windows(2).all(|w| matches!(w, [a, b] if a < b))
                && ids.last().is_none_or(|&id| id <= crate::patterns::MAX_USER_ID)
        };
        if !m.process.selectors.iter().filter_map(|s| s.user.ids.as_ref()).all(ids_ok) {
            return Err(bad("a selector's user ids are not sorted, repeat, or name no user"));
        }
        let reps_ok = m
            .file_dyn_reps
            .iter()
            .all(|[p, o, v]| *p < r.file_path_classes && (*o as usize) < FILE_OPS && (*v as usize) < VOLUMES)
            && m.process_a_reps.iter().all(|[e, o, t]| *e < r.exe_classes && (*o as usize) < PROCESS_OPS && *t < 2)
            && m.process_dyn_reps.iter().all(|[a, n]| *a < r.process_a_classes && *n < r.name_classes);
        if !reps_ok {
            return Err(bad("a class representative points past the tables"));
        }
        Ok(())
    }

    /// The component id of `text`, as the kernel's component maps give it.
    pub fn component_id(&self, text: &str) -> Option<u32> {
        if text.len() > LONG_COMPONENT_BYTES {
            return None;
        }
        self.index.components.get(text).copied()
    }

    /// One automaton step from `state` along `component`: the exact edge,
    /// else the longest prefix edge, else the default.
    pub fn step(&self, state: u32, component: &str) -> u32 {
        let Some(record) = self.states.get(state as usize) else { return state };
        if let Some(next) = self.component_id(component).and_then(|c| self.index.edges.get(&(state, c))) {
            return *next;
        }
        for &len in record.prefix_lens.iter().take_while(|&&l| l != 0) {
            let Some(prefix) = component.get(..usize::from(len)) else { continue };
            if let Some(next) = self.component_id(prefix).and_then(|c| self.index.prefix_edges.get(&(state, c))) {
                return *next;
            }
        }
        record.default_next
    }

    /// The class of an absolute path from `root` (0 for a path that is not
    /// absolute, which no path pattern matches).
    pub fn path_class(&self, root: u32, path: &str) -> u32 {
        self.end_state(root, path).map_or(0, |s| s.accept_class)
    }

    /// The subtree class of a directory's absolute path (file paths only):
    /// the selectors whose pattern holds for the path or a path below it.
    pub fn subtree_class(&self, path: &str) -> u32 {
        self.end_state(self.roots.file_path_root, path).map_or(0, |s| s.subtree_class)
    }

    /// The state an absolute path ends in from `root`; `None` for a path
    /// that is not absolute.
    fn end_state(&self, root: u32, path: &str) -> Option<&DfaState> {
        if !path.starts_with('/') {
            return None;
        }
        let mut state = root;
        for component in path.split('/').filter(|c| !c.is_empty()) {
            // A settled state's classes are those of wherever the path
            // would end (`STATE_SETTLED`): the kernel stops here too.
            if self.states.get(state as usize).is_some_and(|s| s.flags & STATE_SETTLED != 0) {
                break;
            }
            state = self.step(state, component);
        }
        self.states.get(state as usize)
    }

    /// The class of a process name: one step from the name root.
    pub fn name_class(&self, name: &str) -> u32 {
        let end = self.step(self.roots.name_root, name);
        self.states.get(end as usize).map_or(0, |s| s.accept_class)
    }

    /// The file dynamic class of a path class, operation and volume.
    pub fn file_dyn_class(&self, path_class: u32, op: usize, volume: usize) -> u32 {
        let at = path_class as usize * FILE_OPS * VOLUMES + op * VOLUMES + volume;
        self.file_classes.get(at).copied().unwrap_or(0)
    }

    /// The process dynamic class of an executable class, operation,
    /// terminal state and name class.
    pub fn process_dyn_class(&self, exe_class: u32, op: usize, interactive: bool, name_class: u32) -> u32 {
        let a_at = exe_class as usize * PROCESS_OPS * 2 + op * 2 + usize::from(interactive);
        let a = self.process_classes_a.get(a_at).copied().unwrap_or(0);
        let d_at = a as usize * self.roots.name_classes as usize + name_class as usize;
        self.process_classes_d.get(d_at).copied().unwrap_or(0)
    }

    /// The metadata of `kind`. The tables hold no network rules yet (the
    /// compiler refuses to lower a `network:` section, `D4C0044`), so a
    /// network event meets no selector: exactly the meaning of a policy
    /// without one.
    pub fn kind(&self, kind: Kind) -> &KindMeta {
        static NO_RULES: KindMeta = KindMeta { selectors: Vec::new(), responses: Vec::new() };
        match kind {
            Kind::File => &self.meta.file,
            Kind::Process => &self.meta.process,
            Kind::Network => &NO_RULES,
        }
    }

    /// Which selectors of `kind` hold for `container` and a user whom no
    /// condition of the policy names (what the runtime computes once per
    /// container: its default row).
    pub fn container_selectors(&self, kind: Kind, container: &Container) -> Vec<bool> {
        self.selectors_for(kind, container, None)
    }

    /// Which selectors of `kind` hold for `container` and `user` (`None`:
    /// a user whom no condition names; see [`UserConditions::holds`]).
    pub fn selectors_for(&self, kind: Kind, container: &Container, user: Option<&User>) -> Vec<bool> {
        self.kind(kind)
            .selectors
            .iter()
            .map(|s| container_holds(&s.container, container) && s.user.holds(user))
            .collect()
    }

    /// Whether any process selector has a user condition: the kernel then
    /// looks for the row of the container and the acting user.
    pub fn has_user_conditions(&self) -> bool {
        self.meta.process.selectors.iter().any(|s| !s.user.is_empty())
    }

    /// Whether any process selector has a `processUserName` condition: the
    /// runtime must then know each container's `/etc/passwd`.
    pub fn has_user_names(&self) -> bool {
        self.meta.process.selectors.iter().any(|s| s.user.names.is_some())
    }

    /// The users of a container whose row may differ from its default row:
    /// every id a `processUserId` names, and every id whose name in the
    /// container's `passwd` (`(id, name)` pairs, as its `/etc/passwd` lists
    /// them; the first line of an id names it) a `processUserName` matches.
    /// Each with the name the container gives it. Sorted by id, one per id.
    pub fn named_users<'a>(&self, passwd: impl IntoIterator<Item = (u32, &'a str)>) -> Vec<User> {
        let mut names: BTreeMap<u32, &str> = BTreeMap::new();
        for (id, name) in passwd {
            names.entry(id).or_insert(name);
        }
        let conditions: Vec<&UserConditions> = self.meta.process.selectors.iter().map(|s| &s.user).collect();
        let mut ids: BTreeSet<u32> = conditions.iter().filter_map(|c| c.ids.as_ref()).flatten().copied().collect();
        for (&id, name) in &names {
            if conditions.iter().filter_map(|c| c.names.as_ref()).flatten().any(|p| p.matches(name)) {
                ids.insert(id);
            }
        }
        ids.into_iter().map(|id| User { id, name: names.get(&id).map(|n| (*n).to_string()) }).collect()
    }

    /// Which selectors of a file dynamic class hold their per-event
    /// conditions, from its representative.
    pub fn file_dyn_members(&self, class: u32) -> Vec<bool> {
        let Some(&[p, o, v]) = self.meta.file_dyn_reps.get(class as usize) else { return Vec::new() };
        let on_path: BTreeSet<u32> =
            self.meta.file_path_classes.get(p as usize).into_iter().flatten().copied().collect();
        // A directory's event (a subtree class) holds for the selectors that
        // name paths: one without a path condition is about every file, and
        // what a moved directory holds was decided when it was made.
        let subtree = self.meta.file_path_subtree.get(p as usize).copied().unwrap_or(false);
        (0u32..)
            .zip(&self.meta.file.selectors)
            .map(|(i, s)| {
                s.dynamic.holds(o as usize, v as usize, false)
                    && ((!s.dynamic.has_path && !subtree) || on_path.contains(&i))
            })
            .collect()
    }

    /// Which selectors of a process dynamic class hold their per-event
    /// conditions, from its representative.
    pub fn process_dyn_members(&self, class: u32) -> Vec<bool> {
        let Some(&[a, n]) = self.meta.process_dyn_reps.get(class as usize) else { return Vec::new() };
        let Some(&[e, o, t]) = self.meta.process_a_reps.get(a as usize) else { return Vec::new() };
        let exe: BTreeSet<u32> = self.meta.exe_classes.get(e as usize).into_iter().flatten().copied().collect();
        let name: BTreeSet<u32> = self.meta.name_classes.get(n as usize).into_iter().flatten().copied().collect();
        (0u32..)
            .zip(&self.meta.process.selectors)
            .map(|(i, s)| {
                s.dynamic.holds(o as usize, 0, t == 1)
                    && (!s.dynamic.has_path || exe.contains(&i))
                    && (!s.dynamic.has_name || name.contains(&i))
            })
            .collect()
    }

    /// One row entry: the verdict for the selectors that hold both their
    /// per-event conditions (`members`) and their container conditions
    /// (`in_container`). This is what the runtime writes into a row.
    pub fn row_entry(&self, kind: Kind, members: &[bool], in_container: &[bool]) -> Verdict {
        let hit = |i: &u32| {
            let i = *i as usize;
            members.get(i).copied().unwrap_or(false) && in_container.get(i).copied().unwrap_or(false)
        };
        let mut verdict = Verdict::default();
        for response in &self.kind(kind).responses {
            let matched: Vec<usize> = response.matches.iter().filter(|i| hit(i)).map(|&i| i as usize).collect();
            if !matched.is_empty() && !response.excludes.iter().any(hit) {
                verdict.actions = verdict.actions.union(response.actions);
                verdict.matched.extend(matched);
            }
        }
        verdict
    }

    /// The kernel's part of a decision: the event's kind and dynamic class,
    /// from the automaton walks and the class arrays. Its cost is at most one
    /// step per path component (the walk stops at a settled state) plus a
    /// fixed number of lookups.
    pub fn dynamic_class(&self, event: &Event) -> (Kind, u32) {
        match event {
            Event::File(f) => {
                let path_class = match (&f.path, f.directory) {
                    (None, _) => 0,
                    (Some(p), false) => self.path_class(self.roots.file_path_root, p),
                    (Some(p), true) => self.subtree_class(p),
                };
                (Kind::File, self.file_dyn_class(path_class, f.operation.table_index(), volume_index(f.volume)))
            }
            Event::Process(p) => {
                let exe_class = self.path_class(self.roots.exe_root, &p.executable);
                let name_class = self.name_class(&p.name);
                (Kind::Process, self.process_dyn_class(exe_class, p.operation.table_index(), p.interactive, name_class))
            }
            // One class: no network selector is in the tables (see `kind`).
            Event::Network(_) => (Kind::Network, 0),
        }
    }

    /// A container's row for `kind`: the actions of every dynamic class, for
    /// the selectors whose container conditions `in_container` says hold.
    /// The runtime writes this once per distinct container class; the kernel
    /// then reads `row[dynamic_class]`.
    pub fn row(&self, kind: Kind, in_container: &[bool]) -> Vec<Actions> {
        self.each_class(kind, |members| self.row_entry(kind, members, in_container).actions)
    }

    /// `f(members)` for every dynamic class of `kind`, in class order.
    fn each_class<T>(&self, kind: Kind, f: impl Fn(&[bool]) -> T) -> Vec<T> {
        let classes = match kind {
            Kind::File => self.roots.file_dyn_classes,
            Kind::Process => self.roots.process_dyn_classes,
            Kind::Network => 1,
        };
        (0..classes).map(|class| f(&self.dyn_members(kind, class))).collect()
    }

    /// Which selectors of `kind` have no container or user condition: they
    /// hold in every container, for every user.
    pub fn unconditional_selectors(&self, kind: Kind) -> Vec<bool> {
        self.kind(kind)
            .selectors
            .iter()
            .map(|s| s.container == ContainerConditions::default() && s.user.is_empty())
            .collect()
    }

    /// The row of a container whose metadata is not known yet: for every
    /// dynamic class, the union of the actions of every response that
    /// fires in *some* container. Each response is taken on its own, with
    /// its `match` selectors holding in the container and its `exclude`
    /// selectors holding only when they have no container condition (those
    /// hold in every container). So no container's row has an action this
    /// row lacks: deciding by it fails closed.
    pub fn row_for_unknown_container(&self, kind: Kind) -> Vec<Actions> {
        let everywhere = self.unconditional_selectors(kind);
        self.each_class(kind, |members| {
            let member = |i: &u32| members.get(*i as usize).copied().unwrap_or(false);
            let excluded = |i: &u32| member(i) && everywhere.get(*i as usize).copied().unwrap_or(false);
            self.kind(kind)
                .responses
                .iter()
                .filter(|r| r.matches.iter().any(member) && !r.excludes.iter().any(excluded))
                .fold(Actions::NONE, |all, r| all.union(r.actions))
        })
    }

    /// Decides `event` in `container`: the kernel's lookups, then the row
    /// entry the runtime would have written for the container and, for a
    /// process event, its acting user.
    pub fn decide(&self, container: &Container, event: &Event) -> Verdict {
        let (kind, class) = self.dynamic_class(event);
        let members = self.dyn_members(kind, class);
        let in_row = match event {
            Event::File(_) => self.container_selectors(kind, container),
            Event::Process(p) => self.selectors_for(kind, container, Some(&p.user)),
            Event::Network(n) => self.selectors_for(kind, container, Some(&n.user)),
        };
        self.row_entry(kind, &members, &in_row)
    }

    /// Which selectors of `kind` dynamic class `class` holds.
    pub fn dyn_members(&self, kind: Kind, class: u32) -> Vec<bool> {
        match kind {
            Kind::File => self.file_dyn_members(class),
            Kind::Process => self.process_dyn_members(class),
            Kind::Network => Vec::new(),
        }
    }

    /// The operation of `kind` with table index `index`.
    pub fn operation(kind: Kind, index: usize) -> Option<Operation> {
        Operation::of_kind(kind).get(index).copied()
    }
}

fn volume_index(volume: Volume) -> usize {
    volume.table_index()
}

/// Whether every container condition holds.
pub fn container_holds(conditions: &ContainerConditions, container: &Container) -> bool {
    let text = |patterns: &Option<Vec<crate::patterns::TextPattern>>, value: &Option<String>| match patterns {
        None => true,
        Some(patterns) => value.as_deref().is_some_and(|v| patterns.iter().any(|p| p.matches(v))),
    };
    let full_name = conditions.image_full_name.as_ref().is_none_or(|patterns| {
        container.image_full_name.as_deref().is_some_and(|name| {
            crate::event::image_full_name_forms(name).iter().any(|form| patterns.iter().any(|p| p.matches(form)))
        })
    });
    full_name
        && text(&conditions.image_name, &container.image_name)
        && text(&conditions.image_tag, &container.image_tag)
        && text(&conditions.cluster_id, &container.cluster_id)
        && text(&conditions.cluster_name, &container.cluster_name)
        && text(&conditions.namespace, &container.namespace)
        && text(&conditions.pod_name, &container.pod_name)
        && conditions.pod_labels.as_ref().is_none_or(|patterns| {
            patterns.iter().any(|p| p.matches(container.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
        })
}

/// Splits components into the short and long key records, with their ids.
pub fn component_records(components: &[String]) -> (Vec<ComponentKeyShort>, Vec<u32>, Vec<ComponentKeyLong>, Vec<u32>) {
    let mut short = (Vec::new(), Vec::new());
    let mut long = (Vec::new(), Vec::new());
    for (id, text) in (0u32..).zip(components) {
        let bytes = text.as_bytes();
        if bytes.len() <= SHORT_COMPONENT_BYTES {
            let mut key = ComponentKeyShort { len: bytes.len() as u32, bytes: [0; SHORT_COMPONENT_BYTES] };
            key.bytes.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
            short.0.push(key);
            short.1.push(id);
        } else {
            let mut key = ComponentKeyLong { len: bytes.len() as u32, bytes: [0; LONG_COMPONENT_BYTES + 1] };
            key.bytes.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
            long.0.push(key);
            long.1.push(id);
        }
    }
    (short.0, short.1, long.0, long.1)
}

/// The sections of `tables`, in artifact order: `(kind, record size, bytes)`
/// (record size 0 for the metadata blob).
pub fn sections(tables: &Tables) -> Result<Vec<(u32, u32, Vec<u8>)>, TablesError> {
    let meta = postcard::to_allocvec(&tables.meta).map_err(|e| bad(format!("cannot encode the metadata: {e}")))?;
    let (short_keys, short_ids, long_keys, long_ids) = component_records(&tables.components);
    let keys = |edges: &[(EdgeKey, u32)]| edges.iter().map(|(k, _)| *k).collect::<Vec<_>>();
    let values = |edges: &[(EdgeKey, u32)]| edges.iter().map(|(_, v)| *v).collect::<Vec<_>>();
    let size = |n: usize| n as u32;
    Ok(vec![
        (kind::META, 0, meta),
        (kind::ROOTS, size(std::mem::size_of::<Roots>()), tables.roots.as_bytes().to_vec()),
        (kind::COMPONENT_SHORT_KEYS, size(std::mem::size_of::<ComponentKeyShort>()), short_keys.as_bytes().to_vec()),
        (kind::COMPONENT_SHORT_VALUES, 4, short_ids.as_bytes().to_vec()),
        (kind::COMPONENT_LONG_KEYS, size(std::mem::size_of::<ComponentKeyLong>()), long_keys.as_bytes().to_vec()),
        (kind::COMPONENT_LONG_VALUES, 4, long_ids.as_bytes().to_vec()),
        (kind::DFA_STATES, size(std::mem::size_of::<DfaState>()), tables.states.as_bytes().to_vec()),
        (kind::EDGE_KEYS, size(std::mem::size_of::<EdgeKey>()), keys(&tables.edges).as_bytes().to_vec()),
        (kind::EDGE_VALUES, 4, values(&tables.edges).as_bytes().to_vec()),
        (kind::PREFIX_EDGE_KEYS, size(std::mem::size_of::<EdgeKey>()), keys(&tables.prefix_edges).as_bytes().to_vec()),
        (kind::PREFIX_EDGE_VALUES, 4, values(&tables.prefix_edges).as_bytes().to_vec()),
        (kind::FILE_CLASSES, 4, tables.file_classes.as_bytes().to_vec()),
        (kind::PROCESS_CLASSES_A, 4, tables.process_classes_a.as_bytes().to_vec()),
        (kind::PROCESS_CLASSES_D, 4, tables.process_classes_d.as_bytes().to_vec()),
    ])
}

impl Tables {
    /// Writes the tables' sections into `writer`.
    pub fn write_into(&self, writer: &mut crate::ArtifactWriter) -> Result<(), TablesError> {
        for (kind, record_size, bytes) in sections(self)? {
            writer
                .add_section(crate::SectionKind(kind), crate::SectionFlags::NONE, record_size, bytes)
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }

    /// Reads the tables of a parsed artifact, checking every index. The
    /// artifact must be aligned in memory (a memory map, or
    /// [`crate::aligned_copy`]).
    pub fn read(artifact: &crate::Artifact<'_>) -> Result<Tables, TablesError> {
        fn section<'a>(artifact: &crate::Artifact<'a>, kind: u32) -> Result<crate::SectionRef<'a>, TablesError> {
            artifact.section(crate::SectionKind(kind)).ok_or_else(|| {
                bad(format!("the artifact has no `{}` section", crate::section_name(kind).unwrap_or("unknown")))
            })
        }
        fn records<'a, T: zerocopy::FromBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
            artifact: &crate::Artifact<'a>,
            kind: u32,
        ) -> Result<&'a [T], TablesError> {
            section(artifact, kind)?.records::<T>().map_err(|e| bad(e.to_string()))
        }
        let meta: Meta = postcard::from_bytes(section(artifact, kind::META)?.bytes())
            .map_err(|e| bad(format!("the metadata section cannot be decoded: {e}")))?;
        let roots = records::<Roots>(artifact, kind::ROOTS)?
            .first()
            .copied()
            .ok_or_else(|| bad("the roots section is empty"))?;
        let short_keys = records::<ComponentKeyShort>(artifact, kind::COMPONENT_SHORT_KEYS)?;
        let short_ids = records::<u32>(artifact, kind::COMPONENT_SHORT_VALUES)?;
        let long_keys = records::<ComponentKeyLong>(artifact, kind::COMPONENT_LONG_KEYS)?;
        let long_ids = records::<u32>(artifact, kind::COMPONENT_LONG_VALUES)?;
        if short_keys.len() != short_ids.len() || long_keys.len() != long_ids.len() {
            return Err(bad("the component keys and ids differ in number"));
        }
        // The ids are 0..total, each once: an id is checked against the
        // records the file holds before it indexes anything, so that a
        // hostile id (digests recomputed) allocates nothing.
        let total = short_ids.len() + long_ids.len();
        let mut components: Vec<Option<String>> = vec![None; total];
        let mut place = |id: u32, bytes: &[u8], len: u32| -> Result<(), TablesError> {
            let text = bytes
                .get(..len as usize)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| bad(format!("component {id} is not a UTF-8 string of its length")))?;
            let entry = components
                .get_mut(id as usize)
                .ok_or_else(|| bad(format!("component id {id} is past the {total} components the file holds")))?;
            if entry.is_some() {
                return Err(bad(format!("component id {id} is given twice")));
            }
            *entry = Some(text.to_string());
            Ok(())
        };
        for (key, &id) in short_keys.iter().zip(short_ids) {
            place(id, &key.bytes, key.len)?;
        }
        for (key, &id) in long_keys.iter().zip(long_ids) {
            place(id, &key.bytes, key.len)?;
        }
        let components = components
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.ok_or_else(|| bad(format!("component id {i} is missing"))))
            .collect::<Result<Vec<_>, _>>()?;
        let edges = |keys: u32, values: u32| -> Result<Vec<(EdgeKey, u32)>, TablesError> {
            let k = records::<EdgeKey>(artifact, keys)?;
            let v = records::<u32>(artifact, values)?;
            if k.len() != v.len() {
                return Err(bad("edge keys and values differ in number"));
            }
            Ok(k.iter().copied().zip(v.iter().copied()).collect())
        };
        Tables::new(
            roots,
            records::<DfaState>(artifact, kind::DFA_STATES)?.to_vec(),
            components,
            edges(kind::EDGE_KEYS, kind::EDGE_VALUES)?,
            edges(kind::PREFIX_EDGE_KEYS, kind::PREFIX_EDGE_VALUES)?,
            records::<u32>(artifact, kind::FILE_CLASSES)?.to_vec(),
            records::<u32>(artifact, kind::PROCESS_CLASSES_A)?.to_vec(),
            records::<u32>(artifact, kind::PROCESS_CLASSES_D)?.to_vec(),
            meta,
        )
    }
}
