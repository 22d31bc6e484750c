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
//! plus two per node, and the walk is one lookup per component.
//!
//! Subtree classes (file paths: [`Subtrees::Yes`]). A state's
//! `subtree_class` is the set of selectors whose pattern holds for the path
//! so far or for some path below it: what an event on a directory (renamed,
//! moved, mounted) matches, since it stands for everything in it. Off the
//! trie that is what is sticky or pending; on it, that and every pattern
//! anchored at the node or below it in the trie.

use d4c_artifact::patterns::PathPattern;
use d4c_artifact::tables::{DfaState, MAX_PREFIX_LENS, STATE_HAS_EDGES};
use rustc_hash::FxHashMap as HashMap;
use std::collections::{BTreeMap, BTreeSet};

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
}

/// States, edges and interned components shared by every dimension.
#[derive(Debug, Default)]
pub struct Automaton {
    /// States, by id.
    pub states: Vec<DfaState>,
    /// Component strings, by id.
    pub components: Vec<String>,
    component_ids: HashMap<String, u32>,
    /// `(state, component) -> next` along exact edges.
    pub edges: BTreeMap<(u32, u32), u32>,
    /// `(state, component) -> next` along prefix edges.
    pub prefix_edges: BTreeMap<(u32, u32), u32>,
}

impl Automaton {
    fn component(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.component_ids.get(text) {
            return id;
        }
        let id = self.components.len() as u32;
        self.components.push(text.to_string());
        self.component_ids.insert(text.to_string(), id);
        id
    }
}

/// A trie node: one directory prefix of some pattern.
#[derive(Default)]
struct Node {
    children: BTreeMap<String, usize>,
    exact: Vec<usize>,
    children_patterns: Vec<usize>,
    recursive: Vec<usize>,
    /// `(partial component, pattern)` of `Prefix` patterns in this directory.
    prefixes: Vec<(String, usize)>,
}

/// What a state remembers, for interning.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Context {
    node: Option<usize>,
    sticky: BTreeSet<usize>,
    pending: BTreeSet<usize>,
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
    let mut trie = vec![Node::default()];
    for (index, (pattern, _)) in patterns.iter().enumerate() {
        let (dir, slot) = match pattern {
            PathPattern::Exact(p) => (p.as_str(), Slot::Exact),
            PathPattern::Children(d) => (d.as_str(), Slot::Children),
            PathPattern::Recursive(d) => (d.as_str(), Slot::Recursive),
            PathPattern::Prefix(p) => match p.rsplit_once('/') {
                // `/*`-like prefixes of the root with nothing after the slash
                // match every path: the same as `/**`.
                Some(("", "")) | None => ("", Slot::Recursive),
                Some((dir, "")) => (dir, Slot::Recursive),
                Some((dir, partial)) => (dir, Slot::Prefix(partial.to_string())),
            },
        };
        let node = walk_or_insert(&mut trie, dir)?;
        let Some(node) = trie.get_mut(node) else { continue };
        match slot {
            Slot::Exact => node.exact.push(index),
            Slot::Children => node.children_patterns.push(index),
            Slot::Recursive => node.recursive.push(index),
            Slot::Prefix(partial) => {
                if partial.len() > d4c_artifact::tables::LONG_COMPONENT_BYTES {
                    return Err(DfaError::ComponentTooLong { component: partial });
                }
                node.prefixes.push((partial, index));
            }
        }
    }

    // The patterns anchored at each node or below it: children come after
    // their parents in the trie, so one pass from the end sums them.
    let mut below: Vec<BTreeSet<usize>> = trie
        .iter()
        .map(|n| {
            n.exact
                .iter()
                .chain(&n.children_patterns)
                .chain(&n.recursive)
                .chain(n.prefixes.iter().map(|(_, p)| p))
                .copied()
                .collect()
        })
        .collect();
    if subtrees == Subtrees::Yes {
        for id in (0..trie.len()).rev() {
            let children: Vec<usize> = trie.get(id).map(|n| n.children.values().copied().collect()).unwrap_or_default();
            let mut sum = below.get(id).cloned().unwrap_or_default();
            for child in children {
                sum.extend(below.get(child).into_iter().flatten().copied());
            }
            if let Some(slot) = below.get_mut(id) {
                *slot = sum;
            }
        }
    }
    let mut builder = Builder {
        trie: &trie,
        below: (subtrees == Subtrees::Yes).then_some(below),
        patterns,
        automaton,
        states: HashMap::default(),
        classes: ClassTable::default(),
        paths: vec![String::new()],
    };
    let root = builder.state(Context { node: Some(0), sticky: BTreeSet::new(), pending: BTreeSet::new() })?;
    let (sets, subtree) = builder.classes.sets.into_iter().unzip();
    Ok((root, Classes { sets, subtree }))
}

enum Slot {
    Exact,
    Children,
    Recursive,
    Prefix(String),
}

fn walk_or_insert(trie: &mut Vec<Node>, dir: &str) -> Result<usize, DfaError> {
    let mut at = 0;
    for component in dir.split('/').filter(|c| !c.is_empty()) {
        if component.len() > d4c_artifact::tables::LONG_COMPONENT_BYTES {
            return Err(DfaError::ComponentTooLong { component: component.to_string() });
        }
        let next = trie.get(at).and_then(|n| n.children.get(component)).copied();
        at = match next {
            Some(next) => next,
            None => {
                let id = trie.len();
                trie.push(Node::default());
                if let Some(node) = trie.get_mut(at) {
                    node.children.insert(component.to_string(), id);
                }
                id
            }
        };
    }
    Ok(at)
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
        let id = self.sets.len() as u32;
        self.sets.push(key.clone());
        self.ids.insert(key, id);
        id
    }
}

struct Builder<'a> {
    trie: &'a [Node],
    /// Per trie node, the patterns anchored at it or below it; `None`:
    /// no subtree classes.
    below: Option<Vec<BTreeSet<usize>>>,
    patterns: &'a [(PathPattern, Vec<u32>)],
    automaton: &'a mut Automaton,
    states: HashMap<Context, u32>,
    classes: ClassTable,
    /// Path of each trie node, for messages (filled as nodes are visited).
    paths: Vec<String>,
}

impl Builder<'_> {
    /// The state of `context`, built with everything reachable from it.
    /// Iterative (an explicit work list), so deep trees cannot overflow the stack.
    fn state(&mut self, context: Context) -> Result<u32, DfaError> {
        let root = self.allocate(&context);
        let mut work = vec![(context, root)];
        while let Some((context, id)) = work.pop() {
            let record = self.fill(&context, &mut work)?;
            if let Some(slot) = self.automaton.states.get_mut(id as usize) {
                *slot = record;
            }
        }
        Ok(root)
    }

    fn allocate(&mut self, context: &Context) -> u32 {
        let id = self.automaton.states.len() as u32;
        self.automaton.states.push(DfaState::default());
        self.states.insert(context.clone(), id);
        id
    }

    /// The id of `context`'s state, queueing it for filling when new.
    fn target(&mut self, context: Context, work: &mut Vec<(Context, u32)>) -> u32 {
        if let Some(&id) = self.states.get(&context) {
            return id;
        }
        let id = self.allocate(&context);
        work.push((context, id));
        id
    }

    fn fill(&mut self, context: &Context, work: &mut Vec<(Context, u32)>) -> Result<DfaState, DfaError> {
        let Some(node_id) = context.node else {
            // Off the trie: accept what is sticky or pending; any component
            // keeps the sticky patterns and drops the pending ones.
            let accept = self.accept(context.sticky.iter().chain(&context.pending));
            let subtree = match self.below {
                Some(_) => self.class_of(context.sticky.iter().chain(&context.pending), true),
                None => 0,
            };
            let next = Context { node: None, sticky: context.sticky.clone(), pending: BTreeSet::new() };
            let default_next = self.target(next, work);
            return Ok(DfaState { accept_class: accept, default_next, subtree_class: subtree, ..DfaState::default() });
        };
        let trie = self.trie;
        let Some(node) = trie.get(node_id) else { return Ok(DfaState::default()) };
        let accept =
            self.accept(context.sticky.iter().chain(&context.pending).chain(&node.exact).chain(&node.recursive));
        let below = self.below.as_ref().and_then(|b| b.get(node_id)).cloned();
        let subtree = match below {
            Some(below) => self.class_of(context.sticky.iter().chain(&context.pending).chain(&below), true),
            None => 0,
        };
        let mut sticky = context.sticky.clone();
        sticky.extend(node.recursive.iter().copied());
        let pending: BTreeSet<usize> = node.children_patterns.iter().copied().collect();
        let prefixes_of = |text: &str| -> Vec<usize> {
            node.prefixes.iter().filter(|(p, _)| text.starts_with(p.as_str())).map(|(_, i)| *i).collect()
        };

        let mut has_edges = false;
        for (component, &child) in &node.children {
            let mut child_sticky = sticky.clone();
            child_sticky.extend(prefixes_of(component));
            let next = self.target(Context { node: Some(child), sticky: child_sticky, pending: pending.clone() }, work);
            let from = self.states.get(context).copied().unwrap_or_default();
            let component_id = self.automaton.component(component);
            self.automaton.edges.insert((from, component_id), next);
            has_edges = true;
            if self.paths.len() <= child {
                self.paths.resize(child + 1, String::new());
            }
            let path = format!("{}/{component}", self.paths.get(node_id).map_or("", String::as_str));
            if let Some(slot) = self.paths.get_mut(child) {
                *slot = path;
            }
        }
        let partials: BTreeSet<&str> = node.prefixes.iter().map(|(p, _)| p.as_str()).collect();
        let lengths: BTreeSet<usize> = partials.iter().map(|p| p.len()).collect();
        if lengths.len() > MAX_PREFIX_LENS {
            let directory = self.paths.get(node_id).cloned().unwrap_or_default();
            return Err(DfaError::TooManyPrefixLengths { directory: format!("{directory}/"), lengths: lengths.len() });
        }
        for partial in &partials {
            let mut prefix_sticky = sticky.clone();
            prefix_sticky.extend(prefixes_of(partial));
            let next = self.target(Context { node: None, sticky: prefix_sticky, pending: pending.clone() }, work);
            let from = self.states.get(context).copied().unwrap_or_default();
            let component_id = self.automaton.component(partial);
            self.automaton.prefix_edges.insert((from, component_id), next);
            has_edges = true;
        }
        let mut prefix_lens = [0u8; MAX_PREFIX_LENS];
        for (slot, len) in prefix_lens.iter_mut().zip(lengths.iter().rev()) {
            *slot = u8::try_from(*len).unwrap_or(u8::MAX);
        }
        let default_next = self.target(Context { node: None, sticky, pending }, work);
        Ok(DfaState {
            accept_class: accept,
            default_next,
            prefix_lens,
            flags: if has_edges { STATE_HAS_EDGES } else { 0 },
            subtree_class: subtree,
        })
    }

    /// The accept class of a set of satisfied patterns: the union of their
    /// selectors.
    fn accept<'p>(&mut self, patterns: impl Iterator<Item = &'p usize>) -> u32 {
        self.class_of(patterns, false)
    }

    /// The class of the union of `patterns`' selectors, an accept or a
    /// subtree class.
    fn class_of<'p>(&mut self, patterns: impl Iterator<Item = &'p usize>, subtree: bool) -> u32 {
        let mut selectors: BTreeSet<u32> = BTreeSet::new();
        for &p in patterns {
            if let Some((_, sel)) = self.patterns.get(p) {
                selectors.extend(sel.iter().copied());
            }
        }
        self.classes.intern(selectors.into_iter().collect(), subtree)
    }
}
