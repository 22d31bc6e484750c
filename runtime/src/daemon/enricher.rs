//! The enricher: records to documents.
//!
//! Input: the ring buffer's records, in order, with the probes that made
//! them (to explain a decision: the selectors its row entry matched) and
//! the registered containers. Output: ECS documents, through the
//! [`Pipeline`] (process cache, decisions waiting for their outcome, the
//! containers' user names), to which it gives what only the daemon knows:
//! the selectors a decision matched, audit mode's decisions, the facts.
//! Invariant: it reads the probes and the registry and never changes
//! them; what changes them is the control plane's and the reload's.

use std::collections::HashMap;
use std::path::Path;

use d4c_artifact::eval::{Tables, Verdict};
use d4c_artifact::event::{Event as TableEvent, ProcessEvent, User};
use d4c_artifact::ops::{Actions, Kind, Operation};
use d4c_kernel_probes::probes::{Probes, Record};

use crate::config::PendingMode;
use crate::containers::{Metadata, Registry};
use crate::document::Document;
use crate::ecs::Facts;
use crate::event::{Decision, Event};
use crate::inflight::{Decided, Matched};
use crate::load::Policy;
use crate::pipeline::{Context, Pipeline};
use crate::process::Process;

use super::control_plane::users_of;

/// Row entries whose matched selectors are kept explained, at most.
pub const MAX_EXPLAINED: usize = 65_536;

/// What the enricher reads to make documents, and never changes.
pub struct Inputs<'a> {
    /// The probes in force (their tables explain decisions).
    pub probes: &'a Probes,
    /// The registered containers.
    pub registry: &'a Registry,
    /// Whether the BPF LSM decided (else audit mode decides here).
    pub lsm: bool,
    /// How the pending row decides (audit mode decides pending tasks so).
    pub pending: PendingMode,
}

/// The records' path to documents and the facts documents carry.
pub struct Enricher {
    pipeline: Pipeline,
    /// The facts documents carry.
    facts: Facts,
    /// The selectors each row entry matched, by kind, dynamic class and
    /// row: explained once per policy (emptied when it changes, and when
    /// it grows past [`MAX_EXPLAINED`]).
    explained: std::cell::RefCell<HashMap<(Kind, u32, u32), Matched>>,
}

impl Enricher {
    /// An enricher whose documents carry `facts`; its process cache holds
    /// `process_cache` processes, read from `proc_root`.
    pub fn new(facts: Facts, process_cache: usize, proc_root: std::path::PathBuf) -> Enricher {
        Enricher { pipeline: Pipeline::new(process_cache, proc_root), facts, explained: Default::default() }
    }

    /// The records' path (its tallies and sizes, for the metrics).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The facts documents carry.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// The facts, for the control plane (the Kubernetes view adds the
    /// cluster id and the node's API facts).
    pub fn facts_mut(&mut self) -> &mut Facts {
        &mut self.facts
    }

    /// Container `cgroup_id` was registered: its processes so far are
    /// read now, while they run (executables and arguments).
    pub fn learn_container(&mut self, cgroup_id: u64, cgroup_dir: &Path) {
        self.pipeline.processes.learn_cgroup(cgroup_dir, cgroup_id);
    }

    /// Container `cgroup_id`'s user names changed, or it is gone: the
    /// names cached for its documents are read again.
    pub fn forget_users(&mut self, cgroup_id: u64) {
        self.pipeline.users.forget(cgroup_id);
    }

    /// A new policy is in force: documents carry its id, revision and
    /// digest, and decisions are explained by its selectors.
    pub fn policy_changed(&mut self, policy: &Policy) {
        self.explained.get_mut().clear();
        self.facts.policy_id = policy.name.clone();
        self.facts.policy_revision = policy.revision;
        self.facts.policy_digest = policy.digest.clone();
        self.facts.fixed_json.forget_policy();
    }

    /// Records, in ring buffer order: each decoded, then through the
    /// pipeline; then what has waited too long for its outcome comes out.
    /// Returns the first record's task that found its container pending
    /// (cgroup id, kernel time), if any.
    pub fn handle_all(
        &mut self,
        records: &[Record],
        inputs: &Inputs<'_>,
        out: &mut Vec<Document>,
    ) -> Option<(u64, u64)> {
        let mut pending = None;
        self.with_context(inputs, |pipeline, cx| {
            for record in records {
                let event = crate::event::decode(record);
                let task = event.task();
                if task.pending && pending.is_none() {
                    pending = Some((task.cgroup_id, task.ktime_ns));
                }
                pipeline.event(event, cx, out);
            }
            pipeline.expire(cx, out);
        });
        pending
    }

    /// Every decision still waiting for its outcome comes out (the daemon
    /// stops).
    pub fn flush(&mut self, inputs: &Inputs<'_>, out: &mut Vec<Document>) {
        self.with_context(inputs, |pipeline, cx| pipeline.flush(cx, out));
    }

    /// Runs `f` on the pipeline with a [`Context`] of now.
    fn with_context(&mut self, inputs: &Inputs<'_>, f: impl FnOnce(&mut Pipeline, &Context<'_>)) {
        let Enricher { pipeline, facts, explained } = self;
        let Inputs { probes, registry, lsm, pending } = *inputs;
        let explain = |d: &Decision| {
            let key = (d.kind(), d.dyn_class, d.row);
            let mut memo = explained.borrow_mut();
            if let Some(names) = memo.get(&key) {
                return Matched::clone(names);
            }
            if memo.len() >= MAX_EXPLAINED {
                memo.clear();
            }
            let names: Matched =
                selector_names(probes.tables(), d, probes.explain(d.kind(), d.dyn_class, d.row)).into();
            memo.insert(key, Matched::clone(&names));
            names
        };
        let audit = |event: &Event, process: &Process| {
            audit_decision(probes.tables(), pending, registry, facts, event, process)
        };
        let cx = Context {
            facts,
            containers: registry,
            explain: &explain,
            audit: if lsm { None } else { Some(&audit) },
            now_ns: crate::facts::boot_ns(),
            created_ns: crate::facts::realtime_ns(),
        };
        f(pipeline, &cx);
    }
}

/// The names of the selectors of `decision`'s kind, by index.
fn selector_names(tables: &Tables, decision: &Decision, indices: impl IntoIterator<Item = usize>) -> Vec<String> {
    let selectors = &tables.kind(decision.kind()).selectors;
    indices.into_iter().filter_map(|i| selectors.get(i).map(|s| s.name.clone())).collect()
}

/// Audit mode (no BPF LSM): the decision the kernel would have made of a
/// fork or an exec that happened, made here with the table evaluator from
/// its lifecycle event and the process it describes (the forker, or the
/// new program), without `block` (nothing was refused). `None` when no
/// response fires.
///
/// A task whose container was pending when the kernel saw it (its
/// metadata unknown, or its bundle undescribable) is decided as the
/// kernel decides it, by the pending row of `pending` (issue 14: it was
/// decided as a container with no metadata, which no namespace- or
/// image-scoped selector matches); a registered one by its metadata; a
/// host task as a container with no metadata.
fn audit_decision(
    tables: &Tables,
    pending: PendingMode,
    registry: &Registry,
    facts: &Facts,
    event: &Event,
    process: &Process,
) -> Option<Decided> {
    let (operation, name, args) = match event {
        Event::Fork(fork) => (Operation::Fork, fork.task.comm, None),
        Event::Exec(exec) => (Operation::Exec, exec.name, Some(crate::event::Args::new(&process.args))),
        _ => return None,
    };
    let task = event.task();
    let executable = process.executable.clone().unwrap_or_default();
    let table_event = TableEvent::Process(ProcessEvent {
        operation,
        executable: executable.clone(),
        name: name.text(),
        interactive: task.interactive,
        user: user_of(tables, registry.get(task.cgroup_id), task.euid),
    });
    let verdict = if task.pending {
        pending_verdict(tables, pending, &table_event)
    } else {
        let container = match registry.get(task.cgroup_id) {
            Some(m) => m.selector_view(facts.cluster_id.as_deref(), facts.cluster_name.as_deref()),
            None => d4c_artifact::event::Container::default(),
        };
        tables.decide(&container, &table_event)
    };
    let actions = Actions::from_bits(verdict.actions.bits() & !Actions::BLOCK.bits());
    if actions.is_empty() {
        return None;
    }
    let decision = Decision::audit_of(task.clone(), operation, actions, executable, name, args);
    let matched = selector_names(tables, &decision, verdict.matched).into();
    Some(Decided { decision, matched })
}

/// The user with effective uid `euid` in `metadata`'s container, as the
/// kernel's rows see it: named when a user condition can name it there,
/// else a user no condition names.
fn user_of(tables: &Tables, metadata: Option<&Metadata>, euid: u32) -> User {
    metadata
        .filter(|_| tables.has_user_conditions())
        .and_then(|m| users_of(tables, m).into_iter().find(|u| u.id == euid))
        .unwrap_or(User { id: euid, name: None })
}

/// The verdict of the pending row (what the probes write for
/// [`d4c_kernel_probes::probes::Pending`]) on `event`: fail closed, every
/// action any container could get, explained as any container's could be
/// (every container condition taken as holding, as [`Probes::explain`]
/// does); or only the selectors without container conditions.
fn pending_verdict(tables: &Tables, pending: PendingMode, event: &TableEvent) -> Verdict {
    let (kind, class) = tables.dynamic_class(event);
    let members = tables.dyn_members(kind, class);
    match pending {
        PendingMode::FailClosed => {
            let mut verdict = tables.row_entry(kind, &members, &vec![true; members.len()]);
            verdict.actions =
                tables.row_for_unknown_container(kind).get(class as usize).copied().unwrap_or(Actions::NONE);
            verdict
        }
        PendingMode::NoContainerConditions => tables.row_entry(kind, &members, &tables.unconditional_selectors(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4c_kernel_probes::abi::EV_PENDING;

    /// The tables of `policy`, compiled as `d4cc compile` does.
    fn tables(policy: &str) -> Result<Tables, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = crate::load::testing::compile(dir.path(), policy)?;
        crate::load::load(&path, None).map(|(_, tables)| tables).map_err(|e| e.to_string())
    }

    /// Regression (issue 14, fault 3): in audit mode, a pending
    /// container's exec was decided as a container with no metadata, so a
    /// namespace-scoped alert never fired for it, while the kernel's
    /// pending row (fail closed) has it. It is now decided by the pending
    /// row of the configured mode.
    #[test]
    fn audit_mode_decides_pending_containers_by_the_pending_row() -> Result<(), String> {
        let tables = tables(
            "process:\n  selectors:\n    - name: prodTrue\n      operation: [exec]\n      kubernetesNamespace: [prod]\n      \
             processExecutable: [/bin/true]\n  responses:\n    - match: [prodTrue]\n      actions: [alert]\n",
        )?;
        let mut record = crate::event::encode::exec(42, "/bin/true", "true", Some(&["true"]));
        record.head.flags |= EV_PENDING;
        let event = crate::event::decode(&record);
        let process = Process { executable: Some("/bin/true".into()), args: vec!["true".into()], ..Process::default() };
        let (registry, facts) = (Registry::default(), Facts::default());
        let decided = |mode| audit_decision(&tables, mode, &registry, &facts, &event, &process);
        let fail_closed = decided(PendingMode::FailClosed).ok_or("a pending container's exec was not alerted")?;
        assert!(fail_closed.decision.actions.contains(Actions::ALERT), "{:?}", fail_closed.decision.actions);
        assert_eq!(fail_closed.matched.to_vec(), ["prodTrue"]);
        // The mode without container conditions has no selector for it.
        assert!(decided(PendingMode::NoContainerConditions).is_none());
        Ok(())
    }
}
