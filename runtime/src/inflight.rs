//! Decisions whose operation has not happened yet, until a record says
//! what became of it.
//!
//! An exec is decided at `bprm_check_security`, before the new program
//! exists, and a fork at `task_alloc`, before the child does. The document
//! of an allowed exec describes the new program and the one of a fork the
//! new process, so it waits for the record that says the operation
//! happened (`sched_process_exec`, `sched_process_fork`) and carries the
//! decision made before it. A refused operation is reported at once, as
//! it was called; an allowed one that then failed, as it was called, with
//! its failure.
//!
//! In: decisions with their matched selectors ([`Decided`]), and lifecycle
//! events, in record order. Out: [`Resolved`] groups of decisions, each
//! with its [`Outcome`].
//!
//! Invariants: every decision comes out exactly once; decisions of other
//! operations (files) come out at once; an exec's decisions (a script's
//! and its interpreter's, a fileless exec's `execMemFd` and `exec`) come
//! out together, one per operation; nothing waits longer than
//! [`DEADLINE_NS`] of the probes' clock, and at most [`CAPACITY`] wait.
//!
//! What resolves an exec in flight (keyed by process: an exec from any
//! thread makes it the process's leader): its exec record (happened), its
//! failure record (`sys_exit_execve`: the exec returned an error), a
//! refused exec decision of the same process (refused), the process's exit
//! (unconfirmed). A fork in flight (keyed by thread): its fork record
//! (happened), any later record of the same thread (failed: a fork's record
//! comes before the fork returns), the process's exit (unconfirmed).

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use crate::event::{Decision, Event, Hook};

/// How long a decision waits for its outcome, at most, in nanoseconds of
/// the probes' clock: an exec's outcome comes within the syscall, so only
/// lost records (a full ring buffer) make one wait this long.
pub const DEADLINE_NS: u64 = 2_000_000_000;

/// Operations in flight, at most; past it, the oldest comes out
/// unconfirmed.
pub const CAPACITY: usize = 4096;

/// The names of the selectors a decision matched, in policy order:
/// shared, as the daemon explains each row entry once.
pub type Matched = Arc<[String]>;

/// A decision and the names of the selectors it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The decision.
    pub decision: Decision,
    /// The matched selectors' names.
    pub matched: Matched,
}

/// What became of a decided operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The decision is the event: a file operation allowed (its hook runs
    /// as it happens).
    Decided,
    /// The exec or fork happened: the lifecycle record that says so (its
    /// hook and time), and a fork's new process.
    Happened {
        /// The lifecycle record's hook.
        hook: Hook,
        /// Its time (boot clock).
        ktime_ns: u64,
        /// A fork's new process.
        child: Option<u32>,
    },
    /// The hook refused it.
    Refused,
    /// Allowed, it then failed: the record that says so (none when a later
    /// record of the thread is what shows it) and its errno.
    Failed {
        /// The failure record's hook.
        hook: Option<Hook>,
        /// The errno, when a record gave it.
        errno: Option<i32>,
    },
    /// No record said what became of it (lost records, or a process that
    /// ended first).
    Unconfirmed,
}

/// Decisions of one operation, come out with their outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The decisions, one per operation, in the order they were made.
    pub decided: Vec<Decided>,
    /// What became of them.
    pub outcome: Outcome,
}

/// One operation's decisions in flight.
#[derive(Debug)]
struct Entry {
    decided: Vec<Decided>,
    /// When its first decision was made (boot clock).
    since: u64,
}

/// The operations in flight.
#[derive(Debug, Default)]
pub struct InFlight {
    /// Execs, by process.
    execs: HashMap<u32, Entry>,
    /// Forks, by forking thread.
    forks: HashMap<u32, Entry>,
}

impl InFlight {
    /// How many operations are in flight.
    pub fn len(&self) -> usize {
        self.execs.len() + self.forks.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a decision. Returned: the decision itself, with its outcome,
    /// when it comes out at once (a file operation, a refused fork); what
    /// else comes out goes to `out` (a refused exec, with the decisions of
    /// it in flight; a fork in flight of the same thread, which did not
    /// happen since the thread went on).
    pub fn decided(&mut self, decided: Decided, out: &mut Vec<Resolved>) -> Option<(Decided, Outcome)> {
        let task = &decided.decision.task;
        let (pid, tgid, ktime) = (task.pid, task.tgid, task.ktime_ns);
        self.thread_went_on(pid, out);
        let d = &decided.decision;
        let immediate = if d.is_exec() {
            if d.denied {
                let mut group = self.execs.remove(&tgid).map(|e| e.decided).unwrap_or_default();
                merge(&mut group, decided);
                out.push(Resolved { decided: group, outcome: Outcome::Refused });
            } else {
                let entry = self.execs.entry(tgid).or_insert_with(|| Entry { decided: Vec::new(), since: ktime });
                merge(&mut entry.decided, decided);
            }
            None
        } else if d.is_fork() && !d.denied {
            self.forks.insert(pid, Entry { decided: vec![decided], since: ktime });
            None
        } else {
            let outcome = if d.denied { Outcome::Refused } else { Outcome::Decided };
            Some((decided, outcome))
        };
        self.bound(out);
        immediate
    }

    /// Takes a lifecycle event (apply it to the process cache first: what
    /// comes out describes the process as the event left it).
    pub fn lifecycle(&mut self, event: &Event, out: &mut Vec<Resolved>) {
        let task = event.task();
        let happened = |child| Outcome::Happened { hook: task.hook, ktime_ns: task.ktime_ns, child };
        match event {
            Event::Fork(fork) => {
                if let Some(entry) = self.forks.remove(&task.pid) {
                    out.push(Resolved { decided: entry.decided, outcome: happened(Some(fork.child)) });
                }
                return;
            }
            Event::Exec(_) => {
                if let Some(entry) = self.execs.remove(&task.tgid) {
                    out.push(Resolved { decided: entry.decided, outcome: happened(None) });
                }
            }
            Event::ExecFailed(failed) => {
                if let Some(entry) = self.execs.remove(&task.tgid) {
                    let outcome = Outcome::Failed { hook: Some(task.hook), errno: Some(failed.errno) };
                    out.push(Resolved { decided: entry.decided, outcome });
                }
            }
            Event::Exit(_) => {
                if let Some(entry) = self.execs.remove(&task.tgid) {
                    out.push(Resolved { decided: entry.decided, outcome: Outcome::Unconfirmed });
                }
                if let Some(entry) = self.forks.remove(&task.tgid) {
                    out.push(Resolved { decided: entry.decided, outcome: Outcome::Unconfirmed });
                }
                return;
            }
            _ => {}
        }
        self.thread_went_on(task.pid, out);
    }

    /// What has waited longer than [`DEADLINE_NS`] by `now_ns` (boot
    /// clock) comes out unconfirmed, oldest first.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<Resolved>) {
        let due = |e: &Entry| now_ns.saturating_sub(e.since) > DEADLINE_NS;
        let mut expired: Vec<Entry> = Vec::new();
        for map in [&mut self.execs, &mut self.forks] {
            let keys: Vec<u32> = map.iter().filter(|(_, e)| due(e)).map(|(k, _)| *k).collect();
            expired.extend(keys.iter().filter_map(|k| map.remove(k)));
        }
        expired.sort_by_key(|e| e.since);
        out.extend(expired.into_iter().map(|e| Resolved { decided: e.decided, outcome: Outcome::Unconfirmed }));
    }

    /// Everything in flight comes out unconfirmed (the daemon stops).
    pub fn flush(&mut self, out: &mut Vec<Resolved>) {
        self.expire(u64::MAX, out);
    }

    /// Thread `pid` made a record other than its fork's: a fork of it in
    /// flight did not happen.
    fn thread_went_on(&mut self, pid: u32, out: &mut Vec<Resolved>) {
        if let Some(entry) = self.forks.remove(&pid) {
            out.push(Resolved { decided: entry.decided, outcome: Outcome::Failed { hook: None, errno: None } });
        }
    }

    /// Past [`CAPACITY`], the oldest comes out unconfirmed.
    fn bound(&mut self, out: &mut Vec<Resolved>) {
        while self.len() > CAPACITY {
            let oldest =
                |map: &HashMap<u32, Entry>| map.iter().min_by_key(|(_, e)| e.since).map(|(k, e)| (*k, e.since));
            let entry = match (oldest(&self.execs), oldest(&self.forks)) {
                (Some((k, a)), Some((_, b))) if a <= b => self.execs.remove(&k),
                (_, Some((k, _))) => self.forks.remove(&k),
                (Some((k, _)), None) => self.execs.remove(&k),
                (None, None) => None,
            };
            let Some(entry) = entry else { break };
            out.push(Resolved { decided: entry.decided, outcome: Outcome::Unconfirmed });
        }
    }
}

/// Adds `decided` to an exec's decisions: one per operation. A second
/// decision of the same operation (a script's interpreter, after the
/// script) adds its actions and matched selectors to the first's; a
/// refused one also gives it its program (the one refused).
fn merge(group: &mut Vec<Decided>, decided: Decided) {
    let Some(same) = group.iter_mut().find(|g| g.decision.operation == decided.decision.operation) else {
        group.push(decided);
        return;
    };
    let Decided { decision, matched } = decided;
    if matched.iter().any(|name| !same.matched.contains(name)) {
        let mut names = same.matched.to_vec();
        names.extend(matched.iter().filter(|name| !same.matched.contains(name)).cloned());
        same.matched = names.into();
    }
    let actions = same.decision.actions.union(decision.actions);
    if decision.denied {
        same.decision = decision;
    }
    same.decision.actions = actions;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode, encode};
    use d4c_artifact::ops::{Actions, Operation};

    fn decided(record: &d4c_kernel_probes::probes::Record, matched: &[&str]) -> Decided {
        let Event::Decision(decision) = decode(record) else { panic!("not a decision") };
        Decided { decision, matched: matched.iter().map(|m| m.to_string()).collect::<Vec<_>>().into() }
    }

    fn exec_decision(tgid: u32, path: &str) -> Decided {
        decided(&encode::exec_decision(tgid, path, "x", &["x"], Actions::LOG), &["allProcesses"])
    }

    fn event(record: &d4c_kernel_probes::probes::Record) -> Event {
        decode(record)
    }

    #[test]
    fn an_allowed_exec_waits_for_its_exec_record() {
        let mut inflight = InFlight::default();
        let mut out = Vec::new();
        inflight.decided(exec_decision(10, "/usr/bin/nsenter"), &mut out);
        assert!(out.is_empty() && inflight.len() == 1);
        // Another process's exec does not resolve it.
        inflight.lifecycle(&event(&encode::exec(11, "/bin/true", "true", None)), &mut out);
        assert!(out.is_empty());
        let mut exec = encode::exec(10, "/usr/bin/nsenter", "nsenter", None);
        exec.head.ktime_ns = 6_000_000_000;
        inflight.lifecycle(&event(&exec), &mut out);
        let [Resolved { decided, outcome }] = out.as_slice() else { panic!("{out:?}") };
        assert_eq!(decided.len(), 1);
        assert_eq!(*outcome, Outcome::Happened { hook: Hook::SchedProcessExec, ktime_ns: 6_000_000_000, child: None });
        assert!(inflight.is_empty());
    }

    #[test]
    fn a_scripts_two_decisions_come_out_as_one_and_a_fileless_execs_as_two() {
        let mut inflight = InFlight::default();
        let mut out = Vec::new();
        inflight.decided(exec_decision(10, "/app/run.sh"), &mut out);
        let mut interpreter = exec_decision(10, "/bin/dash");
        interpreter.matched = vec!["shells".to_string(), "allProcesses".into()].into();
        interpreter.decision.actions = Actions::ALERT;
        inflight.decided(interpreter, &mut out);
        let mut memfd = decided(
            &encode::decision(10, encode::HOOK_BPRM_CHECK_SECURITY, Operation::ExecMemFd, "", Actions::ALERT),
            &["fileless"],
        );
        memfd.decision.fileless = true;
        inflight.decided(memfd, &mut out);
        inflight.lifecycle(&event(&encode::exec(10, "/bin/dash", "run.sh", None)), &mut out);
        let [Resolved { decided, .. }] = out.as_slice() else { panic!("{out:?}") };
        assert_eq!(decided.len(), 2);
        assert_eq!(decided[0].decision.path, "/app/run.sh");
        assert_eq!(&*decided[0].matched, ["allProcesses", "shells"]);
        assert_eq!(decided[0].decision.actions, Actions::LOG.union(Actions::ALERT));
        assert_eq!(decided[1].decision.operation, Operation::ExecMemFd);
    }

    #[test]
    fn a_refused_exec_comes_out_at_once_as_the_program_refused() {
        let mut inflight = InFlight::default();
        let mut out = Vec::new();
        inflight.decided(exec_decision(10, "/app/run.sh"), &mut out);
        let mut refused = encode::exec_decision(10, "/bin/dash", "run.sh", &["./run.sh"], Actions::ALERT);
        refused.head.flags |= encode::DENIED;
        refused.head.actions = u32::from(Actions::ALERT.union(Actions::BLOCK).bits());
        assert!(inflight.decided(decided(&refused, &["noShells"]), &mut out).is_none());
        let [Resolved { decided, outcome: Outcome::Refused }] = out.as_slice() else { panic!("{out:?}") };
        assert_eq!(decided[0].decision.path, "/bin/dash");
        assert!(decided[0].decision.denied);
        assert_eq!(&*decided[0].matched, ["allProcesses", "noShells"]);
        assert!(decided[0].decision.actions.contains(Actions::LOG));
        assert!(inflight.is_empty());
    }

    #[test]
    fn an_exec_that_fails_after_its_decision_comes_out_failed() {
        let mut inflight = InFlight::default();
        let mut out = Vec::new();
        inflight.decided(exec_decision(10, "/tmp/empty"), &mut out);
        inflight.lifecycle(&event(&encode::lifecycle(10, encode::EXEC_FAILED, 8)), &mut out);
        let [Resolved { outcome, .. }] = out.as_slice() else { panic!("{out:?}") };
        assert_eq!(*outcome, Outcome::Failed { hook: Some(Hook::SysExitExecve), errno: Some(8) });
    }

    #[test]
    fn forks_wait_for_their_fork_record_and_fail_when_the_thread_goes_on() {
        let mut inflight = InFlight::default();
        let mut out = Vec::new();
        let fork =
            || decided(&encode::decision(10, encode::HOOK_TASK_ALLOC, Operation::Fork, "/bin/sh", Actions::LOG), &[]);
        inflight.decided(fork(), &mut out);
        inflight.lifecycle(&event(&encode::lifecycle(10, encode::FORK, 12)), &mut out);
        assert!(matches!(out.as_slice(), [Resolved { outcome: Outcome::Happened { child: Some(12), .. }, .. }]));
        out.clear();
        // A fork that failed (pids.max): the thread's next decision says so.
        inflight.decided(fork(), &mut out);
        inflight.decided(fork(), &mut out);
        assert!(matches!(out.as_slice(), [Resolved { outcome: Outcome::Failed { hook: None, errno: None }, .. }]));
        out.clear();
        // A file decision is its own event.
        let file = encode::decision(10, encode::HOOK_FILE_OPEN, Operation::ModifyFile, "/etc/x", Actions::LOG);
        let at_once = inflight.decided(decided(&file, &[]), &mut out);
        assert_eq!(out.len(), 1, "the fork in flight failed: {out:?}");
        assert!(matches!(at_once, Some((_, Outcome::Decided))));
    }

    #[test]
    fn nothing_waits_past_the_deadline_or_the_capacity_or_the_process() {
        let mut inflight = InFlight::default();
        let mut out = Vec::new();
        inflight.decided(exec_decision(10, "/x"), &mut out);
        inflight.expire(5_000_000_000 + DEADLINE_NS, &mut out);
        assert!(out.is_empty());
        inflight.expire(5_000_000_001 + DEADLINE_NS, &mut out);
        assert!(matches!(out.as_slice(), [Resolved { outcome: Outcome::Unconfirmed, .. }]));
        out.clear();
        inflight.decided(exec_decision(10, "/x"), &mut out);
        inflight.lifecycle(&event(&encode::lifecycle(10, encode::EXIT, 0)), &mut out);
        assert!(matches!(out.as_slice(), [Resolved { outcome: Outcome::Unconfirmed, .. }]));
        out.clear();
        for pid in 0..(CAPACITY as u32 + 3) {
            let mut d = exec_decision(pid + 100, "/x");
            d.decision.task.ktime_ns = u64::from(pid);
            inflight.decided(d, &mut out);
        }
        assert_eq!(inflight.len(), CAPACITY);
        let oldest: Vec<u32> = out.iter().map(|r| r.decided[0].decision.task.tgid).collect();
        assert_eq!(oldest, [100, 101, 102]);
        out.clear();
        inflight.flush(&mut out);
        assert_eq!((out.len(), inflight.len()), (CAPACITY, 0));
    }
}
