//! Path patterns to a deterministic automaton over path components.
//!
//! Input: the distinct patterns of one dimension, each with the selectors
//! that use it. Output: states and edges appended to a shared [`Automaton`]
//! (one per artifact, three roots), and the dimension's classes: class `k`
//! is the sorted set of selectors whose pattern condition holds for a path
//! ending in a state whose `accept_class` is `k`. Class 0 is the empty set.
//!
//! Construction. The patterns' directories form a trie. Walking a path,
//! the automaton is either on the trie (at the node of the path so far) or
//! off it. What it must remember besides the node is:
//! - *sticky* patterns, already satisfied by the path so far whatever
//!   follows: `Recursive(d)` once at or below `d`, `Prefix` once its partial
//!   component matched;
//! - *pending* patterns, satisfied if the path ends right now:
//!   `Children(d)` one component below `d`.
//!
//! On the trie both are fixed by the node (one path reaches it). Off the
//! trie the state is the pair (sticky, pending), interned; one more
//! component empties `pending`. So states number at most the trie's nodes
//! plus two per node and per `prefix*` partial, and the walk is one lookup
//! per component.
//!
//! Subtree classes (file paths: [`Subtrees::Yes`]). A state's
//! `subtree_class` is the set of selectors whose pattern holds for the path
//! so far or for some path below it: what an event on a directory (renamed,
//! moved, mounted) matches, since it stands for everything in it. Off the
//! trie that is what is sticky or pending; on it, that and every pattern
//! anchored at the node or below it in the trie.

//! Cost (issue 14, fault 10). Building is linear in the patterns' bytes:
//! a state stores no path and no set, only ids. Equal sets of patterns
//! (sticky, pending, below a node) are interned once and shared: a node
//! whose sets are its parent's reuses their ids, so a component deep under
//! many `/**` patterns costs what a component under none does. Classes are
//! memoised by those ids. The states are bounded before anything is built:
//! [`prefixes`] counts the trie's nodes and `prefix*` partials (what
//! `MAX_PATH_PREFIXES` limits), each of which makes at most three states.

use d4c_artifact::patterns::PathPattern;
use d4c_artifact::tables::{DfaState, LONG_COMPONENT_BYTES, MAX_PREFIX_LENS, STATE_HAS_EDGES, STATE_SETTLED};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;
use std::ops::Range;
use std::rc::Rc;

/// Why an automaton cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DfaError {
    /// More distinct prefix-pattern lengths in one directory than a state
    /// can try.
    TooManyPrefixLengths {
        /// The directory, as a path.
        directory: String,
        /// How many distinct lengths.
        lengths: usize,
    },
    /// A component longer than `NAME_MAX`: no path has it.
    ComponentTooLong {
        /// The component.
        component: String,
    },
    /// More states than the automaton's limit: building stopped there.
    TooManyStates {
        /// The states built when it stopped (the limit plus one).
        states: usize,
    },
}

/// States, edges and interned components shared by every dimension.
#[derive(Debug)]
pub struct Automaton {
    /// States, by id.
    pub states: Vec<DfaState>,
    /// Component strings, by id.
    pub components: Vec<String>,
    component_ids: HashMap<String, u32>,
    /// `(state, component, next)` along exact edges, in the order built
    /// (each `(state, component)` once).
    pub edges: Vec<(u32, u32, u32)>,
    /// `(state, component, next)` along prefix edges, likewise.
    pub prefix_edges: Vec<(u32, u32, u32)>,
    /// Most states: building fails as soon as one more is needed.
    limit: usize,
}

impl Automaton {
    /// An empty automaton of at most `limit` states.
    pub fn new(limit: usize) -> Self {
        Automaton {
            states: Vec::new(),
            components: Vec::new(),
            component_ids: HashMap::default(),
            edges: Vec::new(),
            prefix_edges: Vec::new(),
            limit,
        }
    }

    /// Marks the settled states ([`STATE_SETTLED`]): the greatest set of
    /// states each of whose successors (exact edges, prefix edges and the
    /// default) is in the set with the same accept and subtree classes. By
    /// induction on a continuation's length, every path from a settled
    /// state ends in a state with its classes. Computed backwards from the
    /// states that cannot be settled, once over the states and edges.
    pub fn mark_settled(&mut self) {
        let n = self.states.len();
        let classes = |state: u32| self.states.get(state as usize).map(|s| (s.accept_class, s.subtree_class));
        let mut predecessors: Vec<Vec<u32>> = vec![Vec::new(); n];
        // The states with a successor unlike them (or not a state): the
        // seeds of the unsettled set, which then spreads to predecessors.
        let mut work: Vec<u32> = Vec::new();
        let successors = self
            .edges
            .iter()
            .chain(&self.prefix_edges)
            .map(|&(from, _, to)| (from, to))
            .chain((0u32..).zip(self.states.iter().map(|s| s.default_next)));
        for (from, to) in successors {
            if let Some(p) = predecessors.get_mut(to as usize) {
                p.push(from);
            }
            if classes(to).is_none() || classes(from) != classes(to) {
                work.push(from);
            }
        }
        let mut unsettled = vec![false; n];
        while let Some(state) = work.pop() {
            match unsettled.get_mut(state as usize) {
                Some(u) if !*u => *u = true,
                _ => continue,
            }
            work.extend(predecessors.get(state as usize).map_or(&[][..], Vec::as_slice));
        }
        for (state, unsettled) in self.states.iter_mut().zip(unsettled) {
            if !unsettled {
                state.flags |= STATE_SETTLED;
            }
        }
    }

    fn component(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.component_ids.get(text) {
            return id;
        }
        let id = count(self.components.len());
        self.components.push(text.to_string());
        self.component_ids.insert(text.to_string(), id);
        id
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Where a pattern is anchored in the trie.
#[derive(Clone, Copy)]
enum Slot<'a> {
    Exact,
    Children,
    Recursive,
    /// A `prefix*` pattern: its partial last component.
    Prefix(&'a str),
}

/// A pattern's directory in the trie and how it hangs there.
fn anchor(pattern: &PathPattern) -> (&str, Slot<'_>) {
    match pattern {
        PathPattern::Exact(p) => (p.as_str(), Slot::Exact),
        PathPattern::Children(d) => (d.as_str(), Slot::Children),
        PathPattern::Recursive(d) => (d.as_str(), Slot::Recursive),
        PathPattern::Prefix(p) => match p.rsplit_once('/') {
            // `/*`-like prefixes of the root with nothing after the slash
            // match every path: the same as `/**`.
            Some(("", "")) | None => ("", Slot::Recursive),
            Some((dir, "")) => (dir, Slot::Recursive),
            Some((dir, partial)) => (dir, Slot::Prefix(partial)),
        },
    }
}

/// A pattern's steps from the root: its directory's components, then its
/// partial component (marked `true`) when it is a `prefix*` pattern.
fn steps<'a>(dir: &'a str, partial: Option<&'a str>) -> impl Iterator<Item = (bool, &'a str)> + 'a {
    dir.split('/').filter(|c| !c.is_empty()).map(|c| (false, c)).chain(partial.map(|p| (true, p)))
}

fn key_of(pattern: &PathPattern) -> (&str, Option<&str>) {
    match anchor(pattern) {
        (dir, Slot::Prefix(partial)) => (dir, Some(partial)),
        (dir, _) => (dir, None),
    }
}

/// The distinct prefixes of one dimension's patterns: the nodes of its
/// trie other than the root (`/a`, `/a/b` and `/a/b/c` for `/a/b/c`,
/// `/a/b/c/*` or `/a/b/c/**`) plus each directory's distinct `prefix*`
/// partials (`/a/b/c*` for `/a/b/c*`). What [`build`] makes is at most three
/// states per prefix, plus three for the root. Allocates one pair per
/// pattern, no map: the patterns are sorted component by component, and
/// each adds the steps it does not share with the one before.
pub fn prefixes<'a>(patterns: impl IntoIterator<Item = &'a PathPattern>) -> usize {
    let mut keys: Vec<(&str, Option<&str>)> = patterns.into_iter().map(key_of).collect();
    keys.sort_unstable_by(|a, b| steps(a.0, a.1).cmp(steps(b.0, b.1)));
    let mut total = 0;
    let mut previous: Option<(&str, Option<&str>)> = None;
    for key in keys {
        let len = steps(key.0, key.1).count();
        let shared =
            previous.map_or(0, |p| steps(p.0, p.1).zip(steps(key.0, key.1)).take_while(|(a, b)| a == b).count());
        total += len - shared.min(len);
        previous = Some(key);
    }
    total
}

/// Counts the distinct prefixes of patterns one at a time, in the order
/// written, to say where a limit is crossed. Holds every prefix it has
/// seen: use it only once a policy is known to be over the limit.
#[derive(Default)]
pub struct PrefixCounter {
    ids: HashMap<(u8, u32, bool, String), u32>,
}

impl PrefixCounter {
    /// Adds `pattern` of dimension `dimension` (any number that tells the
    /// dimensions apart); returns the distinct prefixes seen so far.
    pub fn add(&mut self, dimension: u8, pattern: &PathPattern) -> usize {
        let (dir, partial) = key_of(pattern);
        let mut at = 0u32;
        for (is_partial, step) in steps(dir, partial) {
            let next = count(self.ids.len() + 1);
            at = *self.ids.entry((dimension, at, is_partial, step.to_string())).or_insert(next);
        }
        self.ids.len()
    }
}

/// The patterns' directories as a trie, in flat arrays: node 0 is the root,
/// a node's children come after it.
struct Trie<'a> {
    /// Each node's parent and component (the root's: 0 and "").
    parent: Vec<(u32, &'a str)>,
    /// `children[child_start[n]..child_start[n + 1]]`: node `n`'s children,
    /// sorted by component.
    child_start: Vec<u32>,
    children: Vec<u32>,
    /// `own[own_start[n]..own_start[n + 1]]`: the patterns anchored at `n`.
    own_start: Vec<u32>,
    own: Vec<(Slot<'a>, usize)>,
}

/// Offsets of groups in a list sorted by group (`nodes + 1` of them).
fn starts(nodes: usize, groups: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut start = vec![0u32; nodes + 1];
    for group in groups {
        if let Some(slot) = start.get_mut(group as usize + 1) {
            *slot += 1;
        }
    }
    let mut total = 0;
    for slot in &mut start {
        total += *slot;
        *slot = total;
    }
    start
}

fn range(start: &[u32], node: u32) -> Range<usize> {
    let at = |i: usize| start.get(i).map_or(0, |&s| s as usize);
    at(node as usize)..at(node as usize + 1)
}

impl<'a> Trie<'a> {
    fn new(patterns: &'a [(PathPattern, Vec<u32>)]) -> Result<Self, DfaError> {
        let mut ids: HashMap<(u32, &'a str), u32> = HashMap::default();
        let mut parent: Vec<(u32, &'a str)> = vec![(0, "")];
        let mut anchored: Vec<(u32, Slot<'a>, usize)> = Vec::with_capacity(patterns.len());
        for (index, (pattern, _)) in patterns.iter().enumerate() {
            let (dir, slot) = anchor(pattern);
            let mut at = 0u32;
            for component in dir.split('/').filter(|c| !c.is_empty()) {
                if component.len() > LONG_COMPONENT_BYTES {
                    return Err(DfaError::ComponentTooLong { component: component.to_string() });
                }
                let from = at;
                let next = count(parent.len());
                at = *ids.entry((from, component)).or_insert_with(|| {
                    parent.push((from, component));
                    next
                });
            }
            if let Slot::Prefix(partial) = slot {
                if partial.len() > LONG_COMPONENT_BYTES {
                    return Err(DfaError::ComponentTooLong { component: partial.to_string() });
                }
            }
            anchored.push((at, slot, index));
        }
        drop(ids);
        let nodes = parent.len();
        let mut children: Vec<u32> = (1..count(nodes)).collect();
        children.sort_unstable_by(|&a, &b| parent.get(a as usize).cmp(&parent.get(b as usize)));
        let child_start = starts(nodes, children.iter().map(|&c| parent.get(c as usize).map_or(0, |p| p.0)));
        // Stable: a node's patterns stay in the order given.
        anchored.sort_by_key(|&(node, _, _)| node);
        let own_start = starts(nodes, anchored.iter().map(|&(node, _, _)| node));
        let own = anchored.into_iter().map(|(_, slot, index)| (slot, index)).collect();
        Ok(Trie { parent, child_start, children, own_start, own })
    }

    fn len(&self) -> usize {
        self.parent.len()
    }

    fn children(&self, node: u32) -> &[u32] {
        self.children.get(range(&self.child_start, node)).unwrap_or_default()
    }

    fn own(&self, node: u32) -> &[(Slot<'a>, usize)] {
        self.own.get(range(&self.own_start, node)).unwrap_or_default()
    }

    fn component(&self, node: u32) -> &'a str {
        self.parent.get(node as usize).map_or("", |p| p.1)
    }

    /// The node's path (`""` for the root), for messages.
    fn path(&self, mut node: u32) -> String {
        let mut components = Vec::new();
        while node != 0 {
            let Some(&(up, component)) = self.parent.get(node as usize) else { break };
            components.push(component);
            node = up;
        }
        components.iter().rev().fold(String::new(), |path, c| path + "/" + c)
    }
}

/// Whether a dimension's states get subtree classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subtrees {
    /// File paths: events on directories exist.
    Yes,
    /// Executables and names: `subtree_class` is 0.
    No,
}

/// A dimension's classes: per class, its selectors, and whether it is a
/// subtree class (a directory's, whose events only selectors with a path
/// condition can match).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classes {
    /// The selectors of each class; class 0 is the empty accept class.
    pub sets: Vec<Vec<u32>>,
    /// Whether each class is a subtree class.
    pub subtree: Vec<bool>,
}

/// Builds one dimension into `automaton`. `patterns` are distinct, each with
/// its selectors. Returns the root state and the classes (the subtree
/// classes among them).
pub fn build(
    automaton: &mut Automaton,
    patterns: &[(PathPattern, Vec<u32>)],
    subtrees: Subtrees,
) -> Result<(u32, Classes), DfaError> {
    let trie = Trie::new(patterns)?;
    // The patterns anchored at each node or below it, as ids into
    // `below_sets`. A node with one child and no pattern of its own shares
    // its child's set, so a long chain stores one.
    let below = (subtrees == Subtrees::Yes).then(|| {
        let mut below_of = vec![0u32; trie.len()];
        let mut below_sets: Vec<Rc<[usize]>> = Vec::new();
        for node in (0..count(trie.len())).rev() {
            let own = trie.own(node);
            let id = match trie.children(node) {
                [only] if own.is_empty() => below_of.get(*only as usize).copied().unwrap_or(0),
                children => {
                    let mut set: Vec<usize> = own.iter().map(|&(_, p)| p).collect();
                    for &child in children {
                        let id = below_of.get(child as usize).copied().unwrap_or(0);
                        set.extend(below_sets.get(id as usize).into_iter().flat_map(|s| s.iter().copied()));
                    }
                    set.sort_unstable();
                    set.dedup();
                    below_sets.push(Rc::from(set));
                    count(below_sets.len() - 1)
                }
            };
            if let Some(slot) = below_of.get_mut(node as usize) {
                *slot = id;
            }
        }
        (below_of, below_sets)
    });
    let mut builder = Builder {
        trie: &trie,
        below,
        patterns,
        automaton,
        on_trie: vec![u32::MAX; trie.len()],
        off_trie: HashMap::default(),
        sets: SetTable::new(),
        classes: ClassTable::default(),
        accepts: HashMap::default(),
        subtrees: HashMap::default(),
    };
    let root = builder.state()?;
    let (sets, subtree) = builder.classes.sets.into_iter().unzip();
    Ok((root, Classes { sets, subtree }))
}

/// Interns (selector set, subtree) pairs; class 0 is the empty accept set.
struct ClassTable {
    sets: Vec<(Vec<u32>, bool)>,
    ids: HashMap<(Vec<u32>, bool), u32>,
}

impl Default for ClassTable {
    fn default() -> Self {
        let mut ids = HashMap::default();
        ids.insert((Vec::new(), false), 0);
        ClassTable { sets: vec![(Vec::new(), false)], ids }
    }
}

impl ClassTable {
    fn intern(&mut self, set: Vec<u32>, subtree: bool) -> u32 {
        let key = (set, subtree);
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = count(self.sets.len());
        self.sets.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// The class of the union of the selectors of the patterns in `parts`.
    fn union(&mut self, patterns: &[(PathPattern, Vec<u32>)], parts: &[&[usize]], subtree: bool) -> u32 {
        let mut selectors: Vec<u32> = Vec::new();
        for &p in parts.iter().flat_map(|part| part.iter()) {
            if let Some((_, sel)) = patterns.get(p) {
                selectors.extend(sel.iter().copied());
            }
        }
        selectors.sort_unstable();
        selectors.dedup();
        self.intern(selectors, subtree)
    }
}

/// Sets of patterns, interned: equal sets have one id; 0 is the empty set.
struct SetTable {
    sets: Vec<Rc<[usize]>>,
    ids: HashMap<Rc<[usize]>, u32>,
}

impl SetTable {
    fn new() -> Self {
        let empty: Rc<[usize]> = Rc::from(Vec::new());
        let mut ids = HashMap::default();
        ids.insert(Rc::clone(&empty), 0);
        SetTable { sets: vec![empty], ids }
    }

    fn intern(&mut self, mut set: Vec<usize>) -> u32 {
        set.sort_unstable();
        set.dedup();
        if let Some(&id) = self.ids.get(set.as_slice()) {
            return id;
        }
        let id = count(self.sets.len());
        let set: Rc<[usize]> = Rc::from(set);
        self.sets.push(Rc::clone(&set));
        self.ids.insert(set, id);
        id
    }

    fn get(&self, id: u32) -> Rc<[usize]> {
        self.sets.get(id as usize).map_or_else(|| Rc::from(Vec::new()), Rc::clone)
    }

    /// Set `id` with `more` added: `id` itself when `more` is empty.
    fn with(&mut self, id: u32, more: &[usize]) -> u32 {
        if more.is_empty() {
            return id;
        }
        let mut set = self.get(id).to_vec();
        set.extend_from_slice(more);
        self.intern(set)
    }
}

/// What a state remembers: the trie node (`None`: off the trie), and the
/// sticky and pending patterns as [`SetTable`] ids. On the trie the node
/// alone tells states apart (one path reaches it).
#[derive(Clone, Copy)]
struct Key {
    node: Option<u32>,
    sticky: u32,
    pending: u32,
}

/// Per trie node, the id of the patterns anchored at it or below it; the
/// sets, by id.
type Below = (Vec<u32>, Vec<Rc<[usize]>>);

struct Builder<'a, 't> {
    trie: &'t Trie<'a>,
    /// Per trie node, the id of the patterns anchored at it or below it,
    /// and the sets; `None`: no subtree classes.
    below: Option<Below>,
    patterns: &'a [(PathPattern, Vec<u32>)],
    automaton: &'t mut Automaton,
    /// The state of each trie node (`u32::MAX`: none yet).
    on_trie: Vec<u32>,
    /// The state of each (sticky, pending) off the trie.
    off_trie: HashMap<(u32, u32), u32>,
    sets: SetTable,
    classes: ClassTable,
    /// Accept classes of (sticky, pending) alone.
    accepts: HashMap<(u32, u32), u32>,
    /// Subtree classes of (sticky, pending, below id or `u32::MAX`).
    subtrees: HashMap<(u32, u32, u32), u32>,
}

impl Builder<'_, '_> {
    /// The root's state, built with everything reachable from it.
    /// Iterative (an explicit work list), so deep trees cannot overflow the stack.
    fn state(&mut self) -> Result<u32, DfaError> {
        let mut work = Vec::new();
        let root = self.target(Key { node: Some(0), sticky: 0, pending: 0 }, &mut work)?;
        while let Some((key, id)) = work.pop() {
            let record = self.fill(key, id, &mut work)?;
            if let Some(slot) = self.automaton.states.get_mut(id as usize) {
                *slot = record;
            }
        }
        Ok(root)
    }

    /// The id of `key`'s state, queueing it for filling when new.
    fn target(&mut self, key: Key, work: &mut Vec<(Key, u32)>) -> Result<u32, DfaError> {
        let known = match key.node {
            Some(node) => self.on_trie.get(node as usize).copied().filter(|&s| s != u32::MAX),
            None => self.off_trie.get(&(key.sticky, key.pending)).copied(),
        };
        if let Some(id) = known {
            return Ok(id);
        }
        if self.automaton.states.len() >= self.automaton.limit {
            return Err(DfaError::TooManyStates { states: self.automaton.states.len() + 1 });
        }
        let id = count(self.automaton.states.len());
        self.automaton.states.push(DfaState::default());
        match key.node {
            Some(node) => {
                if let Some(slot) = self.on_trie.get_mut(node as usize) {
                    *slot = id;
                }
            }
            None => {
                self.off_trie.insert((key.sticky, key.pending), id);
            }
        }
        work.push((key, id));
        Ok(id)
    }

    fn fill(&mut self, key: Key, id: u32, work: &mut Vec<(Key, u32)>) -> Result<DfaState, DfaError> {
        let Some(node) = key.node else {
            // Off the trie: accept what is sticky or pending; any component
            // keeps the sticky patterns and drops the pending ones.
            let accept = self.accept(key.sticky, key.pending, &[]);
            let subtree = match self.below {
                Some(_) => self.subtree(key.sticky, key.pending, None),
                None => 0,
            };
            let default_next = self.target(Key { node: None, sticky: key.sticky, pending: 0 }, work)?;
            return Ok(DfaState { accept_class: accept, default_next, subtree_class: subtree, ..DfaState::default() });
        };
        let trie = self.trie;
        let own = trie.own(node);
        let mut accepting = Vec::new();
        let mut recursive = Vec::new();
        let mut children_patterns = Vec::new();
        // Partial component -> its patterns.
        let mut partials: HashMap<&[u8], Vec<usize>> = HashMap::default();
        for &(slot, index) in own {
            match slot {
                Slot::Exact => accepting.push(index),
                Slot::Recursive => {
                    accepting.push(index);
                    recursive.push(index);
                }
                Slot::Children => children_patterns.push(index),
                Slot::Prefix(partial) => partials.entry(partial.as_bytes()).or_default().push(index),
            }
        }
        let accept = self.accept(key.sticky, key.pending, &accepting);
        let below = self.below.as_ref().map(|(below_of, _)| below_of.get(node as usize).copied().unwrap_or(0));
        let subtree = match below {
            Some(below) => self.subtree(key.sticky, key.pending, Some(below)),
            None => 0,
        };
        let sticky = self.sets.with(key.sticky, &recursive);
        let pending = self.sets.intern(children_patterns);
        let texts: BTreeSet<&str> = own
            .iter()
            .filter_map(|(slot, _)| match slot {
                Slot::Prefix(partial) => Some(*partial),
                _ => None,
            })
            .collect();
        let lengths: BTreeSet<usize> = texts.iter().map(|p| p.len()).collect();
        // The patterns whose partial starts `text`: one look-up per length.
        let prefixes_of = |text: &str| -> Vec<usize> {
            lengths
                .iter()
                .filter_map(|&len| text.as_bytes().get(..len))
                .filter_map(|start| partials.get(start))
                .flatten()
                .copied()
                .collect()
        };

        let mut has_edges = false;
        for &child in trie.children(node) {
            let component = trie.component(child);
            let child_sticky = self.sets.with(sticky, &prefixes_of(component));
            let next = self.target(Key { node: Some(child), sticky: child_sticky, pending }, work)?;
            let component_id = self.automaton.component(component);
            self.automaton.edges.push((id, component_id, next));
            has_edges = true;
        }
        if lengths.len() > MAX_PREFIX_LENS {
            let directory = trie.path(node);
            return Err(DfaError::TooManyPrefixLengths { directory: format!("{directory}/"), lengths: lengths.len() });
        }
        for &partial in &texts {
            let prefix_sticky = self.sets.with(sticky, &prefixes_of(partial));
            let next = self.target(Key { node: None, sticky: prefix_sticky, pending }, work)?;
            let component_id = self.automaton.component(partial);
            self.automaton.prefix_edges.push((id, component_id, next));
            has_edges = true;
        }
        let mut prefix_lens = [0u8; MAX_PREFIX_LENS];
        for (slot, len) in prefix_lens.iter_mut().zip(lengths.iter().rev()) {
            *slot = u8::try_from(*len).unwrap_or(u8::MAX);
        }
        let default_next = self.target(Key { node: None, sticky, pending }, work)?;
        Ok(DfaState {
            accept_class: accept,
            default_next,
            prefix_lens,
            flags: if has_edges { STATE_HAS_EDGES } else { 0 },
            subtree_class: subtree,
        })
    }

    /// The accept class of the sticky and pending patterns and `more`: the
    /// union of their selectors. Memoised when `more` is empty.
    fn accept(&mut self, sticky: u32, pending: u32, more: &[usize]) -> u32 {
        if more.is_empty() {
            if let Some(&class) = self.accepts.get(&(sticky, pending)) {
                return class;
            }
        }
        let (s, p) = (self.sets.get(sticky), self.sets.get(pending));
        let class = self.classes.union(self.patterns, &[&*s, &*p, more], false);
        if more.is_empty() {
            self.accepts.insert((sticky, pending), class);
        }
        class
    }

    /// The subtree class of the sticky and pending patterns and those
    /// anchored at or below the node (`below`, an id of `self.below`).
    fn subtree(&mut self, sticky: u32, pending: u32, below: Option<u32>) -> u32 {
        let memo = (sticky, pending, below.unwrap_or(u32::MAX));
        if let Some(&class) = self.subtrees.get(&memo) {
            return class;
        }
        let (s, p) = (self.sets.get(sticky), self.sets.get(pending));
        let empty: Rc<[usize]> = Rc::from(Vec::new());
        let b = match (&self.below, below) {
            (Some((_, sets)), Some(id)) => sets.get(id as usize).cloned().unwrap_or(empty),
            _ => empty,
        };
        let class = self.classes.union(self.patterns, &[&*s, &*p, &*b], true);
        self.subtrees.insert(memo, class);
        class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<(PathPattern, Vec<u32>)> {
        (0u32..).zip(list).map(|(i, text)| (PathPattern::parse(text).unwrap(), vec![i])).collect()
    }

    #[test]
    fn prefixes_are_the_trie_nodes_and_partials_and_bound_the_states() {
        let list = [
            "/a/b/c",
            "/a/b/*",
            "/a/b/**",
            "/a/bc*",
            "/a/bd*",
            "/a/b/cd*",
            "/a-b/c",
            "/a/b-c/d",
            "/x/y",
            "/a/b/c/d/e/*",
            "/**",
        ];
        let p = patterns(&list);
        let trie = Trie::new(&p).unwrap();
        let partials: BTreeSet<(u32, &str)> = (0..count(trie.len()))
            .flat_map(|node| {
                trie.own(node).iter().filter_map(move |(slot, _)| match slot {
                    Slot::Prefix(partial) => Some((node, *partial)),
                    _ => None,
                })
            })
            .collect();
        let counted = prefixes(p.iter().map(|(p, _)| p));
        // a, a/b, a/b/c, a/b/c/d, a/b/c/d/e, a-b, a-b/c, a/b-c, a/b-c/d, x,
        // x/y; partials bc, bd (in /a), cd (in /a/b).
        assert_eq!((trie.len() - 1, partials.len(), counted), (11, 3, 14));
        let mut counter = PrefixCounter::default();
        assert_eq!(p.iter().map(|(x, _)| counter.add(0, x)).last(), Some(counted));
        let mut automaton = Automaton::new(usize::MAX);
        build(&mut automaton, &p, Subtrees::Yes).unwrap();
        assert!(automaton.states.len() <= 3 * (counted + 1), "{}", automaton.states.len());
    }

    #[test]
    fn chains_under_many_recursive_patterns_cost_a_state_per_component() {
        // 100 nested `/**`, then 100 chains 100 deep below them: every
        // component of a chain has all 100 sticky, shared by id.
        let mut list: Vec<String> = (1..=100).map(|d| format!("{}/**", "/r".repeat(d))).collect();
        let chain: String = (1..=100).map(|i| format!("/c{i}")).collect();
        list.extend((0..100).map(|k| format!("{}/v{k}{chain}", "/r".repeat(100))));
        let p = patterns(&list.iter().map(String::as_str).collect::<Vec<_>>());
        let counted = prefixes(p.iter().map(|(p, _)| p));
        assert_eq!(counted, 100 + 100 * 101);
        let mut automaton = Automaton::new(usize::MAX);
        let (_, classes) = build(&mut automaton, &p, Subtrees::Yes).unwrap();
        assert!(automaton.states.len() <= counted + 210, "{}", automaton.states.len());
        // A class per nesting level and per chain, not per component.
        assert!(classes.sets.len() <= 4 * 100 + 10, "{}", classes.sets.len());
    }

    #[test]
    fn building_stops_at_the_state_limit() {
        let p = patterns(&["/a/b/c/d"]);
        let mut automaton = Automaton::new(3);
        assert_eq!(build(&mut automaton, &p, Subtrees::Yes), Err(DfaError::TooManyStates { states: 4 }));
        assert_eq!(automaton.states.len(), 3);
    }

    /// The state a path ends in from `root`, walking every component.
    fn walk(automaton: &Automaton, root: u32, path: &str) -> u32 {
        path.split('/').filter(|c| !c.is_empty()).fold(root, |state, c| {
            let exact = automaton.component_ids.get(c).and_then(|&id| {
                automaton.edges.iter().find(|&&(from, comp, _)| from == state && comp == id).map(|&(_, _, to)| to)
            });
            exact.unwrap_or_else(|| automaton.states.get(state as usize).map_or(state, |s| s.default_next))
        })
    }

    fn settled(automaton: &Automaton, state: u32) -> bool {
        automaton.states.get(state as usize).is_some_and(|s| s.flags & STATE_SETTLED != 0)
    }

    #[test]
    fn settled_states_are_where_no_pattern_tells_continuations_apart() {
        let p = patterns(&["/usr/bin/**", "/etc/passwd", "/var/*"]);
        let mut automaton = Automaton::new(usize::MAX);
        let (root, _) = build(&mut automaton, &p, Subtrees::Yes).unwrap();
        automaton.mark_settled();
        // The root and the way to the patterns are not settled.
        for path in ["/", "/usr", "/etc", "/var", "/var/x"] {
            assert!(!settled(&automaton, walk(&automaton, root, path)), "{path}");
        }
        // Inside `/usr/bin/**`, past a file no pattern names more
        // specifically, and off every pattern: settled.
        for path in ["/usr/bin", "/usr/bin/x/y", "/etc/passwd/x", "/opt", "/var/x/y", "/usr/lib"] {
            assert!(settled(&automaton, walk(&automaton, root, path)), "{path}");
        }
        // `/etc/passwd` itself is not: `/etc/passwd/x` has another class.
        assert!(!settled(&automaton, walk(&automaton, root, "/etc/passwd")));
    }

    #[test]
    fn the_root_of_a_dimension_without_patterns_is_settled() {
        let mut automaton = Automaton::new(usize::MAX);
        let (root, _) = build(&mut automaton, &[], Subtrees::No).unwrap();
        automaton.mark_settled();
        assert!(settled(&automaton, root));
    }
}
