//! The path from a ring buffer record to documents, one way: the record is
//! decoded once ([`crate::event`]), the process cache learns from the
//! event, a decision waits in [`InFlight`] until its operation's outcome is
//! known, and then its documents are made ([`crate::ecs`]).
//!
//! In: records (or events), in ring buffer order, with what the daemon
//! knows beside them ([`Context`]: the node's facts, the containers, the
//! selectors a decision matched, audit mode's decisions). Out: documents.
//!
//! Invariants: nothing here touches the kernel (the daemon owns the probes
//! and passes what the pipeline needs in the [`Context`]), so the whole
//! path runs in tests and benchmarks on records made by hand; every
//! decision makes its documents exactly once, describing the process as
//! the event left it.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use d4c_artifact::ops::Operation;
use d4c_kernel_probes::probes::Record;

use crate::containers::Registry;
use crate::document::Document;
use crate::ecs::{self, Ending, Facts, Report};
use crate::event::{self, Decision, Event, Task};
use crate::inflight::{Decided, InFlight, Matched, Outcome, Resolved};
use crate::process::{Process, ProcessCache};
use crate::users::UserNames;

/// Audit mode's decision of a fork or an exec that happened: the event,
/// the process it describes (the forker, or the new program); `None` when
/// no response fires.
pub type Audit<'a> = dyn Fn(&Event, &Process) -> Option<Decided> + 'a;

/// What the daemon knows beside the records, for one turn.
pub struct Context<'a> {
    /// The node's facts.
    pub facts: &'a Facts,
    /// The registered containers.
    pub containers: &'a Registry,
    /// The names of the selectors a kernel decision matched.
    pub explain: &'a dyn Fn(&Decision) -> Matched,
    /// Audit mode (no LSM decides): the decision the kernel would have
    /// made of a fork or an exec that happened (the event, and the process
    /// it describes: the forker, or the new program), or `None` when no
    /// response fires.
    pub audit: Option<&'a Audit<'a>>,
    /// Now on the probes' clock (ns since boot): what has waited too long
    /// comes out.
    pub now_ns: u64,
    /// Now on the wall clock (ns since the epoch): `event.created`.
    pub created_ns: u64,
}

/// What the pipeline counted.
#[derive(Debug, Default, Clone)]
pub struct Tallies {
    /// Records read, by event (`decision`, `fork`, `exec`, `exec_failed`,
    /// `exit`, `setsid`, `unknown`).
    pub records: BTreeMap<&'static str, u64>,
    /// Documents made, by data stream dataset.
    pub documents: BTreeMap<&'static str, u64>,
    /// Operations the kernel refused.
    pub blocked: u64,
}

/// The pipeline's state.
#[derive(Debug)]
pub struct Pipeline {
    /// The processes.
    pub processes: ProcessCache,
    /// Decisions waiting for their operation's outcome.
    pub inflight: InFlight,
    /// Containers' user and group names.
    pub users: UserNames,
    /// Processes whose start was logged: their end is logged too.
    pub logged: HashSet<u32>,
    /// What was counted.
    pub tallies: Tallies,
}

impl Pipeline {
    /// An empty pipeline: a process cache of at most `process_cache`
    /// processes, reading `/proc` at `proc_root`.
    pub fn new(process_cache: usize, proc_root: PathBuf) -> Pipeline {
        Pipeline {
            processes: ProcessCache::new(process_cache, proc_root.clone()),
            inflight: InFlight::default(),
            users: UserNames::new(proc_root),
            logged: HashSet::new(),
            tallies: Tallies::default(),
        }
    }

    /// One record.
    pub fn record(&mut self, record: &Record, cx: &Context<'_>, out: &mut Vec<Document>) {
        self.event(event::decode(record), cx, out);
    }

    /// One event.
    pub fn event(&mut self, mut event: Event, cx: &Context<'_>, out: &mut Vec<Document>) {
        *self.tallies.records.entry(event.label()).or_default() += 1;
        let mut resolved = Vec::new();
        let actor = self.processes.observe(&mut event);
        match event {
            Event::Decision(decision) => {
                let matched = (cx.explain)(&decision);
                if decision.denied {
                    self.tallies.blocked += 1;
                }
                if let Some((decided, outcome)) = self.inflight.decided(Decided { decision, matched }, &mut resolved) {
                    for r in resolved.drain(..) {
                        self.report(r, cx, out);
                    }
                    self.report_one(decided, outcome, cx, out);
                }
            }
            Event::Unknown(unknown) => {
                tracing::warn!(reason = %unknown.reason, hook = unknown.task.hook.code(), pid = unknown.task.pid,
                    "a record this runtime cannot read (probes of another version?): no document for it");
            }
            lifecycle => {
                if let Some(audit) = cx.audit {
                    let (subject, child) = match &lifecycle {
                        Event::Fork(fork) => (Some(Arc::clone(&actor)), Some(fork.child)),
                        Event::Exec(_) => (Some(Arc::clone(&actor)), None),
                        _ => (None, None),
                    };
                    if let Some(decided) = subject.and_then(|p| audit(&lifecycle, &p)) {
                        let task = lifecycle.task();
                        let outcome = Outcome::Happened { hook: task.hook, ktime_ns: task.ktime_ns, child };
                        resolved.push(Resolved { decided: vec![decided], outcome });
                    }
                }
                self.inflight.lifecycle(&lifecycle, &mut resolved);
                drop(actor);
                if let Event::Exit(exit) = &lifecycle {
                    if self.logged.remove(&exit.task.tgid) {
                        self.end(exit, cx, out);
                    }
                }
            }
        }
        for r in resolved {
            self.report(r, cx, out);
        }
    }

    /// What has waited too long for its outcome comes out (each drain).
    pub fn expire(&mut self, cx: &Context<'_>, out: &mut Vec<Document>) {
        let mut resolved = Vec::new();
        self.inflight.expire(cx.now_ns, &mut resolved);
        for r in resolved {
            self.report(r, cx, out);
        }
    }

    /// Everything still waiting comes out (the daemon stops).
    pub fn flush(&mut self, cx: &Context<'_>, out: &mut Vec<Document>) {
        let mut resolved = Vec::new();
        self.inflight.flush(&mut resolved);
        for r in resolved {
            self.report(r, cx, out);
        }
    }

    /// The documents of decisions whose outcome is known.
    fn report(&mut self, resolved: Resolved, cx: &Context<'_>, out: &mut Vec<Document>) {
        for decided in resolved.decided {
            self.report_one(decided, resolved.outcome, cx, out);
        }
    }

    /// The documents of one decision whose outcome is known.
    fn report_one(&mut self, decided: Decided, outcome: Outcome, cx: &Context<'_>, out: &mut Vec<Document>) {
        let d = &decided.decision;
        let actor = self.processes.shared(d.task.tgid).unwrap_or_else(|| Arc::new(bare(&d.task)));
        let subject = match (outcome, d.operation) {
            (Outcome::Happened { child: Some(child), .. }, Operation::Fork) => {
                self.processes.shared(child).unwrap_or(actor)
            }
            (Outcome::Happened { .. } | Outcome::Decided, _) => actor,
            // An exec that did not happen: the program called.
            (_, Operation::Exec | Operation::ExecMemFd) => {
                let args = d.args.as_ref().map(|a| a.to_vec()).unwrap_or_default();
                let mut refused = actor.running(&d.path, &d.name.text(), args);
                refused.interactive = d.task.interactive;
                Arc::new(refused)
            }
            _ => actor,
        };
        let ancestors = self.processes.ancestors(subject.pid);
        let pids = std::iter::once(subject.pid).chain(ancestors.iter().map(|a| a.pid));
        let names = self.users.names(subject.cgroup_id, pids, subject.uid, subject.gid, cx.now_ns);
        let report = Report {
            decision: d,
            matched: &decided.matched,
            outcome,
            process: &subject,
            ancestors: &ancestors,
            container: cx.containers.get(d.task.cgroup_id),
            names: &names,
            created_ns: cx.created_ns,
        };
        let documents = ecs::decision_documents(cx.facts, &report);
        let started = matches!(outcome, Outcome::Happened { .. }) && (d.is_exec() || d.is_fork());
        if started && !documents.is_empty() {
            self.logged.insert(subject.pid);
        }
        for document in &documents {
            *self.tallies.documents.entry(dataset(&document.stream)).or_default() += 1;
        }
        out.extend(documents);
    }

    /// The `end` document of a process whose start was logged.
    fn end(&mut self, exit: &event::Exit, cx: &Context<'_>, out: &mut Vec<Document>) {
        let process = self.processes.shared(exit.task.tgid).unwrap_or_else(|| Arc::new(bare(&exit.task)));
        let ancestors = self.processes.ancestors(process.pid);
        let pids = std::iter::once(process.pid).chain(ancestors.iter().map(|a| a.pid));
        let names = self.users.names(process.cgroup_id, pids, process.uid, process.gid, cx.now_ns);
        let ending = Ending {
            exit,
            process: &process,
            ancestors: &ancestors,
            container: cx.containers.get(exit.task.cgroup_id),
            names: &names,
            created_ns: cx.created_ns,
        };
        let document = ecs::end_document(cx.facts, &ending);
        *self.tallies.documents.entry(dataset(&document.stream)).or_default() += 1;
        out.push(document);
    }
}

/// What a task's record alone says of its process (it is not cached: the
/// cache was full, or dropped it).
fn bare(task: &Task) -> Process {
    Process {
        pid: task.tgid,
        ppid: task.ppid,
        sid: task.sid,
        uid: task.uid,
        gid: task.gid,
        start_boot_ns: task.ktime_ns,
        name: task.comm.text(),
        interactive: task.interactive,
        cgroup_id: task.cgroup_id,
        ..Process::default()
    }
}

/// `logs-cloud_defend.file-default` -> `cloud_defend.file`: one of the
/// three datasets the documents go to.
pub fn dataset(stream: &str) -> &'static str {
    ["cloud_defend.alerts", "cloud_defend.file", "cloud_defend.process"]
        .into_iter()
        .find(|d| stream.strip_prefix("logs-").and_then(|s| s.strip_prefix(d)).is_some_and(|s| s.starts_with('-')))
        .unwrap_or("other")
}
