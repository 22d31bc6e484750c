//! `d4cc test`: runs scenario files (`*.d4ct`, see `docs/scenarios.md`)
//! against a compiled policy.
//!
//! Input: a parsed scenario and a decision function (the table evaluator
//! over the compiled artifact, or the direct evaluator). Output: one
//! [`StepResult`] per operation: the verdict expected, the verdict got, and
//! the events the operation made. The file system each container starts
//! with is simulated, operations that are allowed change it, and the
//! classification rules of `docs/scenarios.md` turn each syscall into
//! events. Problems in the scenario itself (a file that does not exist, a
//! selector name the policy lacks) are [`ScenarioProblem`]s with spans.

use d4c_artifact::eval::Verdict;
use d4c_artifact::event::{Container, Event, FileEvent, ProcessEvent, User, Volume};
use d4c_artifact::normalize::comm;
use d4c_artifact::ops::{Actions, Operation};
use d4c_grammar::{Action, ContainerDecl, ContainerField, Op, ScenarioFile, Span, Step, Verdict as Expected};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A problem in a scenario: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioProblem {
    /// Byte span in the scenario file.
    pub span: Span,
    /// Lowercase, the user's text in backticks.
    pub message: String,
    /// The fix, when there is one to suggest.
    pub help: Option<String>,
}

/// The outcome of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResult {
    /// The step's span in the scenario file.
    pub span: Span,
    /// The expected actions.
    pub expected_actions: Actions,
    /// The expected matched selectors, when the step names them.
    pub expected_selectors: Option<BTreeSet<String>>,
    /// What the policy decided.
    pub actual_actions: Actions,
    /// The matched selectors, by name.
    pub actual_selectors: BTreeSet<String>,
    /// The events the operation made.
    pub events: Vec<Event>,
}

impl StepResult {
    /// Whether the decision is what the step expects.
    pub fn passed(&self) -> bool {
        self.expected_actions == self.actual_actions
            && self.expected_selectors.as_ref().is_none_or(|s| *s == self.actual_selectors)
    }
}

/// What decides: `(container, event) -> verdict`, plus selector names for
/// reporting (`kind_of_event`, index) -> name.
pub trait Decider {
    /// Decides one event.
    fn decide(&self, container: &Container, event: &Event) -> Verdict;
    /// The name of selector `index` of the event's kind.
    fn selector_name(&self, event: &Event, index: usize) -> Option<String>;
    /// Whether the policy has a selector of that name (either kind).
    fn has_selector(&self, name: &str) -> bool;
}

/// What is at a path in a simulated container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    /// A regular file with its permission bits.
    File(u32),
    /// A symbolic link (mode 0777: an executable name by d4c's rule).
    Symlink,
    /// A directory made by `dir` or `mkdir` (the parents of other nodes
    /// are directories without an entry).
    Dir,
}

impl Node {
    /// The permission bits the kernel sees.
    fn mode(self) -> u32 {
        match self {
            Node::File(mode) => mode,
            Node::Symlink => 0o777,
            Node::Dir => DEFAULT_DIR_MODE,
        }
    }
}

struct Sandbox {
    container: Container,
    /// The container as declared: its users name the acting processes'.
    decl: ContainerDecl,
    /// Files, symbolic links and the directories made explicitly, by path.
    nodes: BTreeMap<String, Node>,
    volumes: Vec<String>,
    volume_files: Vec<String>,
}

const DEFAULT_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;
const EXECUTABLE_BITS: u32 = 0o111;

/// Runs every step of `file`. Returns the results of the steps that could
/// run, and the problems of those that could not.
pub fn run(file: &ScenarioFile, decider: &dyn Decider) -> (Vec<StepResult>, Vec<ScenarioProblem>) {
    let mut problems = Vec::new();
    let mut sandboxes: HashMap<String, Sandbox> = HashMap::new();
    for decl in &file.containers {
        sandboxes.insert(decl.name.value.clone(), sandbox(decl, &mut problems));
    }
    let mut results = Vec::new();
    for step in &file.steps {
        if let Some(names) = expected_selectors(&step.verdict.value) {
            for name in names {
                if !decider.has_selector(&name.value) {
                    problems.push(ScenarioProblem {
                        span: name.span.clone(),
                        message: format!("the policy has no selector named `{}`", name.value),
                        help: Some("list the names of the policy's selectors that should match".into()),
                    });
                }
            }
        }
        let host = step.container.value == "host";
        let Some(sandbox) = (if host { None } else { sandboxes.get_mut(&step.container.value) }) else {
            if host {
                results.push(host_step(step));
            }
            continue;
        };
        // A name the container does not declare is a parse error already:
        // no process can run as it.
        let Some(user) = acting_user(&sandbox.decl, step) else { continue };
        match perform(sandbox, step, user) {
            Ok((events, changes)) => {
                let mut verdict = Verdict::default();
                let mut names = BTreeSet::new();
                for event in &events {
                    let v = decider.decide(&sandbox.container, event);
                    for &i in &v.matched {
                        if let Some(n) = decider.selector_name(event, i) {
                            names.insert(n);
                        }
                    }
                    verdict = verdict.union(v);
                }
                if !verdict.actions.contains(Actions::BLOCK) {
                    changes(sandbox);
                }
                results.push(StepResult {
                    span: step.span.clone(),
                    expected_actions: expected_actions(&step.verdict.value),
                    expected_selectors: expected_selectors(&step.verdict.value)
                        .map(|names| names.iter().map(|n| n.value.clone()).collect()),
                    actual_actions: verdict.actions,
                    actual_selectors: names,
                    events,
                });
            }
            Err(problem) => problems.push(problem),
        }
    }
    (results, problems)
}

/// Operations on the host are not decided: the verdict is always `allow`.
fn host_step(step: &Step) -> StepResult {
    StepResult {
        span: step.span.clone(),
        expected_actions: expected_actions(&step.verdict.value),
        expected_selectors: expected_selectors(&step.verdict.value)
            .map(|n| n.iter().map(|n| n.value.clone()).collect()),
        actual_actions: Actions::NONE,
        actual_selectors: BTreeSet::new(),
        events: Vec::new(),
    }
}

fn expected_actions(verdict: &Expected) -> Actions {
    match verdict {
        Expected::Allow => Actions::NONE,
        Expected::Actions { actions, .. } => actions.iter().fold(Actions::NONE, |all, a| {
            all.union(match a.value {
                Action::Log => Actions::LOG,
                Action::Alert => Actions::ALERT,
                Action::Block => Actions::BLOCK,
            })
        }),
    }
}

fn expected_selectors(verdict: &Expected) -> Option<&Vec<d4c_grammar::Spanned<String>>> {
    match verdict {
        Expected::Allow => None,
        Expected::Actions { selectors, .. } => selectors.as_ref(),
    }
}

/// The user a step's process acts as: the id its `user` gives (root by
/// default), named as the container's `/etc/passwd` names it. `None` for a
/// name the container does not declare.
fn acting_user(decl: &ContainerDecl, step: &Step) -> Option<User> {
    let (id, name) = decl.acting_user(step.user.as_ref().map(|u| &u.value))?;
    Some(User { id, name: name.map(str::to_string) })
}

fn sandbox(decl: &ContainerDecl, problems: &mut Vec<ScenarioProblem>) -> Sandbox {
    let fields = &decl.fields;
    let mut sandbox = Sandbox {
        container: Container::default(),
        decl: decl.clone(),
        nodes: BTreeMap::new(),
        volumes: Vec::new(),
        volume_files: Vec::new(),
    };
    for field in fields {
        let span = field.span.clone();
        let path = match &field.value {
            ContainerField::Volume(p)
            | ContainerField::VolumeFile(p)
            | ContainerField::File { path: p, .. }
            | ContainerField::Dir { path: p, .. } => Some(p),
            _ => None,
        };
        if let Some(path) = path.filter(|p| !is_canonical(p)) {
            problems.push(not_canonical(path, span));
        }
        match &field.value {
            ContainerField::Image(reference) => {
                let (full, name, tag) = split_image(reference);
                sandbox.container.image_full_name = Some(full);
                sandbox.container.image_name = Some(name);
                sandbox.container.image_tag = tag;
            }
            ContainerField::Namespace(v) => sandbox.container.namespace = Some(v.clone()),
            ContainerField::Pod(v) => sandbox.container.pod_name = Some(v.clone()),
            ContainerField::Label { key, value } => sandbox.container.labels.push((key.clone(), value.clone())),
            ContainerField::ClusterId(v) => sandbox.container.cluster_id = Some(v.clone()),
            ContainerField::ClusterName(v) => sandbox.container.cluster_name = Some(v.clone()),
            ContainerField::Volume(p) => sandbox.volumes.push(p.clone()),
            ContainerField::VolumeFile(p) => sandbox.volume_files.push(p.clone()),
            ContainerField::File { path, mode } => {
                sandbox.nodes.insert(path.clone(), Node::File(mode.unwrap_or(DEFAULT_MODE)));
            }
            // The model keeps no directory modes: a directory's events do
            // not depend on them.
            ContainerField::Dir { path, .. } => {
                sandbox.nodes.insert(path.clone(), Node::Dir);
            }
            // The users make `/etc/passwd`, below.
            ContainerField::User { .. } => {}
        }
    }
    // Declared users are the lines of `/etc/passwd`, a file like any other
    // (a `file` there beside them is a parse error).
    if decl.users().next().is_some() {
        sandbox.nodes.insert(d4c_grammar::PASSWD.to_string(), Node::File(DEFAULT_MODE));
    }
    sandbox
}

pub use d4c_artifact::event::split_image;

fn is_canonical(path: &str) -> bool {
    path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && path.split('/').skip(1).all(|c| !c.is_empty() && c != "." && c != "..")
}

fn not_canonical(path: &str, span: Span) -> ScenarioProblem {
    ScenarioProblem {
        span,
        message: format!("`{path}` is not a canonical absolute path"),
        help: Some("the kernel reports paths without `//`, `.`, `..` or a trailing `/`".into()),
    }
}

type Change = Box<dyn FnOnce(&mut Sandbox)>;

impl Sandbox {
    /// The mount `path` is on: a single-file mount, else the deepest volume
    /// directory at or above it, else the root file system (`None`).
    fn mount(&self, path: &str) -> Option<&str> {
        if let Some(file) = self.volume_files.iter().find(|f| *f == path) {
            return Some(file);
        }
        self.volumes.iter().filter(|v| below(path, v)).max_by_key(|v| v.len()).map(String::as_str)
    }

    fn volume(&self, path: &str) -> Volume {
        match self.mount(path) {
            Some(m) if self.volume_files.iter().any(|f| f == m) => Volume::VolumeFile,
            Some(_) => Volume::Volume,
            None => Volume::RootFs,
        }
    }

    fn file_event(&self, operation: Operation, path: &str) -> Event {
        self.event_at(operation, path, false)
    }

    fn event_at(&self, operation: Operation, path: &str, directory: bool) -> Event {
        Event::File(FileEvent { operation, path: Some(path.to_string()), volume: self.volume(path), directory })
    }

    /// What is at `path`: its entry, or a directory when anything is below
    /// it (or it is `/`).
    fn node(&self, path: &str) -> Option<Node> {
        if let Some(node) = self.nodes.get(path) {
            return Some(*node);
        }
        (path == "/" || self.below(path).next().is_some()).then_some(Node::Dir)
    }

    /// The entries strictly below directory `dir`.
    fn below<'s>(&'s self, dir: &str) -> impl Iterator<Item = (&'s String, &'s Node)> + 's {
        let prefix = if dir == "/" { "/".to_string() } else { format!("{dir}/") };
        self.nodes.range(prefix.clone()..).take_while(move |(p, _)| p.starts_with(&prefix))
    }

    /// The entries at or below `path`, taken out.
    fn take_tree(&mut self, path: &str) -> Vec<(String, Node)> {
        let inside: Vec<String> =
            self.nodes.keys().filter(|p| p.as_str() == path || below(p, path) && path != "/").cloned().collect();
        inside.into_iter().filter_map(|p| self.nodes.remove(&p).map(|n| (p, n))).collect()
    }

    /// Puts a tree taken from `from` at `to`. A directory that had no entry
    /// (it was the parent of its entries) gets one, so that it stays one
    /// even when empty.
    fn put_tree(&mut self, from: &str, to: &str, tree: Vec<(String, Node)>, node: Node) {
        self.nodes.insert(to.to_string(), node);
        for (path, node) in tree {
            if let Some(rest) = path.strip_prefix(from) {
                self.nodes.insert(format!("{to}{rest}"), node);
            }
        }
    }

    /// The events at one name of a rename or exchange, from what leaves it
    /// and what arrives (the rule of `docs/scenarios.md`, as the probes
    /// apply it): a file replacing a file modifies it; otherwise what
    /// leaves is a `deleteFile` and what arrives a creation, and a
    /// directory stands for everything in it (a leaving one is a
    /// `deleteFile`, an arriving one a `createExecutable` and a
    /// `createFile`, each of every path at or below the name).
    fn name_events(&self, path: &str, leaving: Option<Node>, arriving: Option<Node>) -> Vec<Event> {
        let exec = |n: Node| n.mode() & EXECUTABLE_BITS != 0;
        match (leaving, arriving) {
            (Some(old), Some(new)) if old != Node::Dir && new != Node::Dir => {
                let operation =
                    if exec(old) || exec(new) { Operation::ModifyExecutable } else { Operation::ModifyFile };
                return vec![self.file_event(operation, path)];
            }
            _ => {}
        }
        let mut events = Vec::new();
        if let Some(old) = leaving {
            events.push(self.event_at(Operation::DeleteFile, path, old == Node::Dir));
        }
        match arriving {
            Some(Node::Dir) => {
                events.push(self.event_at(Operation::CreateExecutable, path, true));
                events.push(self.event_at(Operation::CreateFile, path, true));
            }
            Some(new) => events.push(
                self.file_event(if exec(new) { Operation::CreateExecutable } else { Operation::CreateFile }, path),
            ),
            None => {}
        }
        events
    }
}

/// Whether `path` is `dir` or below it.
fn below(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// `rename` and `link` cannot cross mounts: the kernel fails them with
/// `EXDEV` before any security hook runs, so there is nothing to decide.
fn same_mount(
    sandbox: &Sandbox,
    from: &d4c_grammar::Spanned<String>,
    to: &d4c_grammar::Spanned<String>,
    what: &str,
) -> Result<(), ScenarioProblem> {
    if sandbox.mount(&from.value) == sandbox.mount(&to.value) {
        return Ok(());
    }
    Err(ScenarioProblem {
        span: from.span.start..to.span.end,
        message: format!(
            "`{what}` from `{}` to `{}` crosses a mount: the kernel fails it with `EXDEV`",
            from.value, to.value
        ),
        help: Some(
            "a program moves files across mounts by copying and unlinking: write `create` and `unlink` steps".into(),
        ),
    })
}

/// What the kernel refuses of a rename before it changes anything (the
/// probes decide it all the same: the hook runs first): a directory onto a
/// file or a non-empty directory, a file onto a directory, a directory into
/// itself. The scenario cannot state such a step.
fn check_rename(
    sandbox: &Sandbox,
    from: &d4c_grammar::Spanned<String>,
    to: &d4c_grammar::Spanned<String>,
    moved: Node,
    there: Option<Node>,
) -> Result<(), ScenarioProblem> {
    let refused = |why: &str| ScenarioProblem {
        span: from.span.start..to.span.end,
        message: format!("renaming `{}` to `{}` fails: {why}", from.value, to.value),
        help: Some("rename onto a new name, a file onto a file, or a directory onto an empty directory".into()),
    };
    if from.value == to.value {
        return Err(refused("it is the same name"));
    }
    match (moved, there) {
        (Node::Dir, _) if below(&to.value, &from.value) => {
            Err(refused("a directory cannot move into itself (`EINVAL`)"))
        }
        (Node::Dir, Some(Node::File(_) | Node::Symlink)) => Err(refused("a directory onto a file (`ENOTDIR`)")),
        (Node::Dir, Some(Node::Dir)) if sandbox.below(&to.value).next().is_some() => {
            Err(refused("the directory there is not empty (`ENOTEMPTY`)"))
        }
        (Node::File(_) | Node::Symlink, Some(Node::Dir)) => Err(refused("a file onto a directory (`EISDIR`)")),
        _ => Ok(()),
    }
}

/// The events of one step, and the change to the file system if allowed.
fn perform(sandbox: &Sandbox, step: &Step, user: User) -> Result<(Vec<Event>, Change), ScenarioProblem> {
    let actor = step.actor.as_ref().map_or("/bin/sh", |a| a.value.as_str()).to_string();
    if let Some(a) = step.actor.as_ref().filter(|a| !is_canonical(&a.value)) {
        return Err(not_canonical(&a.value, a.span.clone()));
    }
    // A process name is the kernel's comm: what `prctl(PR_SET_NAME)` keeps
    // of a longer name is its first 15 bytes.
    let actor_name = step.actor_name.as_ref().map_or_else(|| comm(&actor), |n| comm(&n.value));
    let interactive = step.interactive;
    let problem = |span: &Span, message: String, help: &str| ScenarioProblem {
        span: span.clone(),
        message,
        help: Some(help.to_string()),
    };
    let canonical = |p: &d4c_grammar::Spanned<String>| -> Result<(), ScenarioProblem> {
        if is_canonical(&p.value) {
            Ok(())
        } else {
            Err(not_canonical(&p.value, p.span.clone()))
        }
    };
    // Anything at the path: a file, a symbolic link or a directory.
    let node = |p: &d4c_grammar::Spanned<String>| -> Result<Node, ScenarioProblem> {
        canonical(p)?;
        sandbox.node(&p.value).ok_or_else(|| {
            problem(
                &p.span,
                format!("`{}` does not exist in this container", p.value),
                "declare it with `file \"PATH\"` or `dir \"PATH\"` in the container",
            )
        })
    };
    // A regular file, reached by its own name (the model does not follow
    // symbolic links: the kernel decides on the file they lead to).
    let exists = |p: &d4c_grammar::Spanned<String>| -> Result<u32, ScenarioProblem> {
        match node(p)? {
            Node::File(mode) => Ok(mode),
            Node::Dir => Err(problem(
                &p.span,
                format!("`{}` is a directory in this container", p.value),
                "name a file: only renames and exchanges act on directories",
            )),
            Node::Symlink => Err(problem(
                &p.span,
                format!("`{}` is a symbolic link: the kernel decides on the file it leads to", p.value),
                "name the link's target",
            )),
        }
    };
    // Nothing was made at the path. A directory that is only the parent of
    // other paths does not count: a scenario may use a path as a file in
    // one step and as a directory in another, which the VM suite skips.
    let absent = |p: &d4c_grammar::Spanned<String>| -> Result<(), ScenarioProblem> {
        canonical(p)?;
        match sandbox.nodes.get(&p.value) {
            Some(_) => Err(problem(
                &p.span,
                format!("`{}` already exists in this container", p.value),
                "use `write`, or a new path",
            )),
            None => Ok(()),
        }
    };
    let executable = |mode: u32| mode & EXECUTABLE_BITS != 0;
    let created = |mode: u32| if executable(mode) { Operation::CreateExecutable } else { Operation::CreateFile };
    let modified = |mode: u32| if executable(mode) { Operation::ModifyExecutable } else { Operation::ModifyFile };
    Ok(match &step.op.value {
        Op::Create { path, mode } | Op::Mknod { path, mode } => {
            absent(path)?;
            let mode = mode.as_ref().map_or(DEFAULT_MODE, |m| m.value);
            let p = path.value.clone();
            (
                vec![sandbox.file_event(created(mode), &path.value)],
                Box::new(move |s: &mut Sandbox| {
                    s.nodes.insert(p, Node::File(mode));
                }),
            )
        }
        Op::Write(path) | Op::Truncate(path) => {
            let mode = exists(path)?;
            (vec![sandbox.file_event(modified(mode), &path.value)], Box::new(|_: &mut Sandbox| {}))
        }
        // An access ACL sets the permission bits as a chmod does (the
        // special bits stay).
        Op::Chmod { path, mode } | Op::Setfacl { path, mode } => {
            let old = exists(path)?;
            let new = match &step.op.value {
                Op::Setfacl { .. } => (old & !0o777) | (mode.value & 0o777),
                _ => mode.value,
            };
            let operation = if !executable(old) && executable(new) {
                Operation::CreateExecutable
            } else if executable(old) {
                Operation::ModifyExecutable
            } else {
                Operation::ModifyFile
            };
            let p = path.value.clone();
            (
                vec![sandbox.file_event(operation, &path.value)],
                Box::new(move |s: &mut Sandbox| {
                    s.nodes.insert(p, Node::File(new));
                }),
            )
        }
        Op::Link { from, to } => {
            let source = node(from)?;
            if source == Node::Dir {
                return Err(problem(
                    &from.span,
                    format!("`{}` is a directory: the kernel refuses hard links to directories", from.value),
                    "link a file",
                ));
            }
            absent(to)?;
            same_mount(sandbox, from, to, "link")?;
            let p = to.value.clone();
            (
                vec![sandbox.file_event(created(source.mode()), &to.value)],
                Box::new(move |s: &mut Sandbox| {
                    s.nodes.insert(p, source);
                }),
            )
        }
        Op::Symlink { link, .. } => {
            absent(link)?;
            let p = link.value.clone();
            (
                vec![sandbox.file_event(Operation::CreateExecutable, &link.value)],
                Box::new(move |s: &mut Sandbox| {
                    s.nodes.insert(p, Node::Symlink);
                }),
            )
        }
        Op::Mkdir { path, .. } => {
            absent(path)?;
            let p = path.value.clone();
            (
                Vec::new(),
                Box::new(move |s: &mut Sandbox| {
                    s.nodes.insert(p, Node::Dir);
                }),
            )
        }
        Op::Rename { from, to } => {
            let moved = node(from)?;
            canonical(to)?;
            same_mount(sandbox, from, to, "rename")?;
            let there = sandbox.node(&to.value);
            check_rename(sandbox, from, to, moved, there)?;
            let mut events = sandbox.name_events(&from.value, Some(moved), None);
            events.extend(sandbox.name_events(&to.value, there, Some(moved)));
            let (a, b) = (from.value.clone(), to.value.clone());
            (
                events,
                Box::new(move |s: &mut Sandbox| {
                    s.take_tree(&b);
                    let tree = s.take_tree(&a);
                    s.put_tree(&a, &b, tree, moved);
                }),
            )
        }
        Op::Exchange { a, b } => {
            let (first, second) = (node(a)?, node(b)?);
            same_mount(sandbox, a, b, "exchange")?;
            if below(&a.value, &b.value) || below(&b.value, &a.value) {
                return Err(problem(
                    &b.span,
                    format!(
                        "`{}` and `{}` are one inside the other: the kernel fails it with `EINVAL`",
                        a.value, b.value
                    ),
                    "exchange two names neither of which is inside the other",
                ));
            }
            let mut events = sandbox.name_events(&a.value, Some(first), Some(second));
            events.extend(sandbox.name_events(&b.value, Some(second), Some(first)));
            let (x, y) = (a.value.clone(), b.value.clone());
            (
                events,
                Box::new(move |s: &mut Sandbox| {
                    let tree_x = s.take_tree(&x);
                    let tree_y = s.take_tree(&y);
                    s.put_tree(&y, &x, tree_y, second);
                    s.put_tree(&x, &y, tree_x, first);
                }),
            )
        }
        Op::Unlink(path) => {
            if node(path)? == Node::Dir {
                return Err(problem(
                    &path.span,
                    format!("`{}` is a directory: `unlink` fails on it", path.value),
                    "unlink a file or a link",
                ));
            }
            let p = path.value.clone();
            (
                vec![sandbox.file_event(Operation::DeleteFile, &path.value)],
                Box::new(move |s: &mut Sandbox| {
                    s.nodes.remove(&p);
                }),
            )
        }
        Op::Exec(path) => {
            let mode = exists(path)?;
            if !executable(mode) {
                return Err(problem(
                    &path.span,
                    format!("`{}` is not executable (mode {:04o})", path.value, mode),
                    "give it an execute bit with `file \"PATH\" mode 0755`",
                ));
            }
            let event = Event::Process(ProcessEvent {
                user: user.clone(),
                operation: Operation::Exec,
                executable: path.value.clone(),
                name: comm(&path.value),
                interactive,
            });
            (vec![event], Box::new(|_: &mut Sandbox| {}))
        }
        Op::Fork => {
            let event = Event::Process(ProcessEvent {
                user: user.clone(),
                operation: Operation::Fork,
                executable: actor,
                name: actor_name,
                interactive,
            });
            (vec![event], Box::new(|_: &mut Sandbox| {}))
        }
        Op::MemfdExec(name) => {
            let file = Event::File(FileEvent {
                operation: Operation::ExecMemFd,
                path: None,
                volume: Volume::RootFs,
                directory: false,
            });
            let process = Event::Process(ProcessEvent {
                user: user.clone(),
                operation: Operation::Exec,
                executable: format!("memfd:{}", name.value),
                // The memfd's dentry name, as the kernel sets comm for an
                // execveat of a file descriptor (docs/kernel-probes.md).
                name: comm(&format!("memfd:{}", name.value)),
                interactive,
            });
            (vec![file, process], Box::new(|_: &mut Sandbox| {}))
        }
    })
}

/// The table evaluator over a compiled artifact, as a [`Decider`].
pub struct TablesDecider<'a> {
    /// The artifact's tables.
    pub tables: &'a d4c_artifact::eval::Tables,
}

impl Decider for TablesDecider<'_> {
    fn decide(&self, container: &Container, event: &Event) -> Verdict {
        self.tables.decide(container, event)
    }

    fn selector_name(&self, event: &Event, index: usize) -> Option<String> {
        self.tables.kind(event.kind()).selectors.get(index).map(|s| s.name.clone())
    }

    fn has_selector(&self, name: &str) -> bool {
        [&self.tables.meta.file, &self.tables.meta.process].iter().any(|k| k.selectors.iter().any(|s| s.name == name))
    }
}

/// What `d4cc test` found in one scenario file.
pub struct FileOutcome {
    /// The scenario file (diagnostics point into it).
    pub source: crate::source::SourceFile,
    /// Problems and failed steps, as diagnostics.
    pub diagnostics: Vec<crate::diag::Diagnostic>,
    /// Steps run.
    pub steps: usize,
    /// Steps whose verdict differed.
    pub failed: usize,
}

/// An event in words: `createExecutable /usr/bin/x (volume)`.
pub fn describe_event(event: &Event) -> String {
    match event {
        Event::File(f) => {
            let volume = match f.volume {
                Volume::RootFs => "",
                Volume::Volume => " (on a volume)",
                Volume::VolumeFile => " (a mounted file)",
            };
            // A directory's event stands for everything in it.
            let directory = if f.directory { " (a directory, with everything in it)" } else { "" };
            format!("{} {}{directory}{volume}", f.operation.name(), f.path.as_deref().unwrap_or("(no path)"))
        }
        Event::Process(p) => {
            let tty = if p.interactive { ", interactive" } else { "" };
            format!("{} {} (name `{}`{tty}{})", p.operation.name(), p.executable, p.name, p.user.clause())
        }
        Event::Network(n) => n.describe(),
    }
}

fn describe_verdict(actions: Actions, selectors: &BTreeSet<String>) -> String {
    if selectors.is_empty() {
        actions.to_string()
    } else {
        format!("{actions} [{}]", selectors.iter().cloned().collect::<Vec<_>>().join(", "))
    }
}

/// The policy a scenario file at `scenario` names as `policy` (relative to
/// the file), read, linted and compiled in memory: the artifact's bytes
/// (policy name `scenario`, revision 0) and its tables. Errors are a
/// message and a help line.
fn compile_policy(
    scenario: &std::path::Path,
    policy: &str,
) -> Result<(Vec<u8>, d4c_artifact::eval::Tables), (String, String)> {
    let policy_path = scenario.parent().unwrap_or(std::path::Path::new(".")).join(policy);
    let shown = policy_path.display().to_string();
    let policy_bytes = d4c_artifact::input::open_regular(&policy_path)
        .and_then(|file| d4c_artifact::input::read_up_to(file, crate::limits::MAX_SOURCE_BYTES as u64))
        .map_err(|e| {
            (format!("cannot read the policy `{shown}`: {e}"), "the path is relative to the scenario file".into())
        })?;
    let (_, lint) = crate::lint::lint_bytes(shown.clone(), policy_bytes.clone());
    let errors = lint.diagnostics.iter().filter(|d| d.severity == crate::codes::Severity::Error).count();
    let Some(checked) = lint.checked.filter(|_| errors == 0) else {
        return Err((format!("the policy `{shown}` has {errors} error(s)"), format!("run `d4cc lint {shown}`")));
    };
    let options = crate::compile::CompileOptions { policy_name: "scenario".into(), revision: 0, created_unix: None };
    crate::compile::compile(&policy_bytes, &checked, &options)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            let aligned = d4c_artifact::aligned_copy(&bytes);
            let artifact = d4c_artifact::Artifact::parse(&aligned).map_err(|e| e.to_string())?;
            let tables = d4c_artifact::eval::Tables::read(&artifact).map_err(|e| e.to_string())?;
            Ok((bytes, tables))
        })
        .map_err(|e| (format!("the policy does not compile: {e}"), "run `d4cc compile` on it for details".into()))
}

/// A scenario file made ready for another executor (the VM suite): the
/// parsed file, its policy's tables, each container's metadata, and what
/// the table evaluator predicts for every step.
pub struct Prepared {
    /// The scenario's text (spans point into it).
    pub text: String,
    /// The parsed file.
    pub file: ScenarioFile,
    /// The policy's tables.
    pub tables: d4c_artifact::eval::Tables,
    /// The policy's artifact (policy name `scenario`, revision 0), as
    /// `d4cc compile` writes it.
    pub artifact: Vec<u8>,
    /// Each container's metadata, by name.
    pub containers: HashMap<String, Container>,
    /// The prediction for each step that could run, `host` steps included.
    pub results: Vec<StepResult>,
    /// The steps that could not run, and other problems.
    pub problems: Vec<ScenarioProblem>,
}

/// Parses the scenario file at `path`, compiles its policy, and predicts
/// every step. Errors: the file cannot be read, does not parse, or its
/// policy does not compile.
pub fn prepare(path: &std::path::Path) -> Result<Prepared, String> {
    let text = d4c_artifact::input::read_regular_text(path, crate::limits::MAX_SOURCE_BYTES as u64)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let (file, errors) = d4c_grammar::parse(&text);
    if let Some(e) = errors.first() {
        return Err(format!("`{}`: {} (byte {})", path.display(), e.message, e.span.start));
    }
    let policy = file.policy.as_ref().ok_or_else(|| format!("`{}` names no policy", path.display()))?;
    let (artifact, tables) = compile_policy(path, &policy.value).map_err(|(message, _)| message)?;
    let (results, problems) = run(&file, &TablesDecider { tables: &tables });
    let mut ignored = Vec::new();
    let containers =
        file.containers.iter().map(|d| (d.name.value.clone(), sandbox(d, &mut ignored).container)).collect();
    Ok(Prepared { text, file, tables, artifact, containers, results, problems })
}

/// Runs the scenario file at `path`: parses it, compiles its policy (in
/// memory), runs every step with the table evaluator. I/O errors on the
/// scenario itself are `Err`; everything else is a diagnostic.
pub fn test_file(path: &std::path::Path, name: &str) -> Result<FileOutcome, String> {
    use crate::codes::Code;
    use crate::diag::Diagnostic;
    use crate::span::Span;
    // A regular file (a FIFO would block), read one byte past the limit
    // so that the front end reports an oversized one.
    let bytes = d4c_artifact::input::open_regular(path)
        .and_then(|file| d4c_artifact::input::read_up_to(file, crate::limits::MAX_SOURCE_BYTES as u64))
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let source = match crate::source::SourceFile::from_bytes(name, bytes) {
        Ok(source) => source,
        Err(err) => {
            let (source, mut diagnostic) = *err;
            diagnostic.code = Code::ScenarioSyntax;
            return Ok(FileOutcome { source, diagnostics: vec![diagnostic], steps: 0, failed: 0 });
        }
    };
    let to_span = |s: &Span2| Span::new(s.start, s.end);
    type Span2 = std::ops::Range<usize>;
    let mut diagnostics = Vec::new();
    let (file, errors) = d4c_grammar::parse(&source.text);
    for e in errors {
        let mut d = Diagnostic::new(Code::ScenarioSyntax, to_span(&e.span), e.message).label("here");
        if let Some(help) = e.help {
            d = d.help(help);
        }
        diagnostics.push(d);
    }
    let Some(policy) = &file.policy else {
        return Ok(FileOutcome { source, diagnostics, steps: 0, failed: 0 });
    };
    let tables = match compile_policy(path, &policy.value) {
        Ok((_, t)) => t,
        Err((message, help)) => {
            diagnostics.push(
                Diagnostic::new(Code::ScenarioState, to_span(&policy.span), message).label("this policy").help(help),
            );
            return Ok(FileOutcome { source, diagnostics, steps: 0, failed: 0 });
        }
    };
    let (results, problems) = run(&file, &TablesDecider { tables: &tables });
    for p in problems {
        let mut d = Diagnostic::new(Code::ScenarioState, to_span(&p.span), p.message).label("here");
        if let Some(help) = p.help {
            d = d.help(help);
        }
        diagnostics.push(d);
    }
    let mut failed = 0;
    for r in &results {
        if r.passed() {
            continue;
        }
        failed += 1;
        let expected = describe_verdict(r.expected_actions, r.expected_selectors.as_ref().unwrap_or(&BTreeSet::new()));
        let shown = if r.expected_selectors.is_some() { r.actual_selectors.clone() } else { BTreeSet::new() };
        let actual = describe_verdict(r.actual_actions, &shown);
        let events: Vec<String> = r.events.iter().map(describe_event).collect();
        let mut d = Diagnostic::new(
            Code::ScenarioFailed,
            to_span(&r.span),
            format!("expected `{expected}`, the policy decided `{actual}`"),
        )
        .label("this step");
        let matched = if r.actual_selectors.is_empty() {
            "no selector of a fired response matched".to_string()
        } else {
            format!("matched: {}", r.actual_selectors.iter().cloned().collect::<Vec<_>>().join(", "))
        };
        let events = if events.is_empty() { "no events (not in a container)".to_string() } else { events.join("; ") };
        d = d.help(format!("events: {events}; {matched}"));
        diagnostics.push(d);
    }
    diagnostics.sort_by_key(|d| d.primary.span.start);
    Ok(FileOutcome { source, diagnostics, steps: results.len(), failed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_is_the_basename_cut_to_15_bytes() {
        assert_eq!(comm("/usr/bin/averyveryverylongname"), "averyveryverylo");
        assert_eq!(comm("/bin/sh"), "sh");
    }
}
