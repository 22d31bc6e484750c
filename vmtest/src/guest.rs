//! The scenario runner in the guest: each scenario file's containers as
//! real runc containers, each step's actor staged in its container before
//! any probe runs, then the probes loaded with the file's policy, then
//! each step's operation performed as a real syscall and checked against
//! what `d4cc test` predicts (the table evaluator):
//!
//! - the syscall is refused with EPERM exactly when the prediction blocks,
//!   and succeeds otherwise;
//! - the kernel's decision records are the predicted events that have
//!   actions, field for field (kind, operation, path, volume; executable,
//!   name, terminal), and their actions are the predicted ones;
//! - the selectors each record's row entry matched are the predicted ones;
//! - the documents the runtime makes of the records (its own record path,
//!   [`Daemon`], which also loads the probes and discovers the containers
//!   from their cgroups and bundles) are delivered by its delivery to the
//!   guest's `_bulk` endpoint, and each says what the prediction says,
//!   field by field ([`crate::documents`]).
//!
//! Kernels differ on the comm a `fexecve` of a memfd gets (the fd number,
//! or the memfd's name): for `memfd-exec` steps the process name is taken
//! from the kernel, printed, and the decision is checked against the table
//! evaluator on the kernel's event.
//!
//! Output: one `D4C-VMTEST-STEP:` line per failed step, one
//! `D4C-VMTEST-FILE:` line per file, one `D4C-VMTEST-VERIFIER:` line with
//! every program's verifier instruction count, and counters.

use crate::bulk_sink::{BulkSink, Received};
use crate::bundle::{Actor, AgentOp, Container, ContainerSpec, NODE_FILES};
use crate::documents::{self, Acting, Expected, Setup};
use d4c_artifact::eval::Tables;
use d4c_artifact::event::{Container as Meta, Event, FileEvent, ProcessEvent, Volume};
use d4c_artifact::ops::{Actions, Kind, Operation};
use d4c_grammar::{ContainerField, Op, Step};
use d4c_kernel_probes::abi;
use d4c_kernel_probes::probes::{Probes, Record, Settings};
use d4c_runtime::cgroup;
use d4c_runtime::daemon::Daemon;
use d4c_runtime::delivery::{Delivery, DocumentSender};
use d4c_runtime::kube::PodInfo;
use d4cc::scenario::{prepare, Prepared, StepResult};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Where bundles go (a tmpfs in the guest).
const WORKDIR: &str = "/tmp/d4c-scenarios";
/// The guest's cgroup v2 mount.
const CGROUPFS: &str = "/sys/fs/cgroup";
/// EPERM.
const EPERM: i32 = 1;
/// ENOEXEC.
const ENOEXEC: i32 = 8;
/// The default mode of `create` and `mknod` (docs/scenarios.md).
const DEFAULT_MODE: u32 = 0o644;
/// A directory's mode when a `dir` field or `mkdir` step gives none.
const DEFAULT_DIR_MODE: u32 = 0o755;
/// The guest's `_bulk` endpoint for the scenarios' documents.
const SINK: &str = "127.0.0.1:9202";
/// What the runtime is configured with, as its documents show it.
const SETUP: Setup<'static> =
    Setup { namespace: "vmtest", cluster_name: "vmtest-cluster", policy_id: "scenario", revision: 0 };
/// How long delivery may take to flush a file's documents (TCG is slow).
const DELIVERY_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Where each file's documents go: the endpoint, and the async runtime
/// delivery runs on while the runner performs steps.
struct Sink {
    endpoint: BulkSink,
    tokio: tokio::runtime::Runtime,
}

/// Runs every scenario file in `paths` (files, or directories searched for
/// `*.d4ct`). Returns whether all passed; `Err` when the run could not be
/// carried out at all.
pub fn run(paths: &[PathBuf]) -> Result<bool, String> {
    let files = scenario_files(paths)?;
    if files.is_empty() {
        return Err("no scenario files (*.d4ct) found".into());
    }
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");
    let sink = Sink {
        endpoint: BulkSink::start(SINK)?,
        tokio: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start an async runtime: {e}"))?,
    };
    let mut all_passed = true;
    let mut total = Totals::default();
    for (n, file) in files.iter().enumerate() {
        // A file that cannot be run fails, and the others still run.
        let started = std::time::Instant::now();
        let outcome = match run_file(file, n, n == 0, &sink) {
            Ok(outcome) => outcome,
            Err(e) => {
                println!("D4C-VMTEST-FILE: FAIL {} could not be run: {}", file.display(), e.replace('\n', " | "));
                all_passed = false;
                continue;
            }
        };
        println!(
            "D4C-VMTEST-FILE: {} {} steps={} failed={} host-steps-skipped={} documents={} seconds={:.1}",
            if outcome.failed == 0 { "ok" } else { "FAIL" },
            file.display(),
            outcome.steps,
            outcome.failed,
            outcome.host_skipped,
            outcome.documents,
            started.elapsed().as_secs_f64()
        );
        all_passed &= outcome.failed == 0;
        total.steps += outcome.steps;
        total.failed += outcome.failed;
        total.host_skipped += outcome.host_skipped;
        total.documents += outcome.documents;
    }
    println!(
        "D4C-VMTEST-TOTAL: files={} steps={} failed={} host-steps-skipped={} documents={} {}",
        files.len(),
        total.steps,
        total.failed,
        total.host_skipped,
        total.documents,
        crate::node::timings().summary()
    );
    Ok(all_passed)
}

#[derive(Default)]
struct Totals {
    steps: usize,
    failed: usize,
    host_skipped: usize,
    /// Documents delivered and checked field by field.
    documents: usize,
}

fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| format!("cannot list `{}`: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "d4ct"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// A step made ready: its prediction, its actor, its op.
struct Planned<'a> {
    step: &'a Step,
    prediction: &'a StepResult,
    line: usize,
    actor: Actor,
    /// The staged actor and its pid, once staged.
    staged: Option<(u32, u32)>,
}

/// Runs one file. `Err` only when the file cannot be run at all.
fn run_file(path: &Path, index: usize, print_stats: bool, sink: &Sink) -> Result<Totals, String> {
    let prepared = prepare(path)?;
    for problem in &prepared.problems {
        println!(
            "D4C-VMTEST-STEP: FAIL {}:{} cannot be run: {}",
            path.display(),
            line_of(&prepared.text, problem.span.start),
            problem.message
        );
    }
    let workdir = PathBuf::from(WORKDIR).join(index.to_string());
    std::fs::create_dir_all(&workdir).map_err(|e| format!("cannot create `{}`: {e}", workdir.display()))?;

    let written: std::collections::HashSet<&str> = prepared
        .file
        .steps
        .iter()
        .filter_map(|s| match &s.op.value {
            Op::Write(p) | Op::Truncate(p) => Some(p.value.as_str()),
            _ => None,
        })
        .collect();
    // A scenario's file system has files only: a path may be a file in one
    // step and a directory above another step's file. A real one cannot
    // have both; such steps are skipped, and said so.
    // Per container: the paths used as files, and their ancestors.
    // The paths that are directories (a `dir` field, a `mkdir` step, or a
    // directory's event in the prediction) are the model's own: they are
    // not files, and not checked.
    let mut dir_paths: HashMap<&str, std::collections::HashSet<String>> = HashMap::new();
    // Of those, the ones the steps make or move.
    let mut step_dirs: HashMap<&str, std::collections::HashSet<String>> = HashMap::new();
    for decl in &prepared.file.containers {
        dir_paths.entry(decl.name.value.as_str()).or_default().extend(decl.fields.iter().filter_map(
            |f| match &f.value {
                ContainerField::Dir { path, .. } => Some(path.clone()),
                _ => None,
            },
        ));
    }
    for prediction in &prepared.results {
        let Some(step) = prepared.file.steps.iter().find(|s| s.span == prediction.span) else { continue };
        let mut made: Vec<String> = prediction
            .events
            .iter()
            .filter_map(|e| match e {
                Event::File(FileEvent { path: Some(path), directory: true, .. }) => Some(path.clone()),
                _ => None,
            })
            .collect();
        if let Op::Mkdir { path, .. } = &step.op.value {
            made.push(path.value.clone());
        }
        dir_paths.entry(step.container.value.as_str()).or_default().extend(made.iter().cloned());
        // A step predicted to be refused makes or moves nothing.
        if !prediction.actual_actions.contains(d4c_artifact::ops::Actions::BLOCK) {
            step_dirs.entry(step.container.value.as_str()).or_default().extend(made);
        }
    }
    let is_dir = |container: &str, p: &str| dir_paths.get(container).is_some_and(|d| d.contains(p));
    // Whether `p` is, or is below, a directory some step makes or moves:
    // it must not exist before that step.
    let made_by_steps = |container: &str, p: &str| {
        step_dirs.get(container).is_some_and(|d| d.iter().any(|dir| p == dir || p.starts_with(&format!("{dir}/"))))
    };
    let mut files: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    for step in &prepared.file.steps {
        let name = step.container.value.as_str();
        files.entry(name).or_default().extend(op_paths(&step.op.value).into_iter().filter(|p| !is_dir(name, p)));
    }
    for decl in &prepared.file.containers {
        files.entry(decl.name.value.as_str()).or_default().extend(decl.fields.iter().filter_map(|f| match &f.value {
            ContainerField::File { path, .. } => Some(path.as_str()),
            _ => None,
        }));
    }
    let ancestors = |p: &str| -> Vec<String> {
        Path::new(p).ancestors().skip(1).map(|a| a.to_string_lossy().into_owned()).collect()
    };
    let dirs: HashMap<&str, std::collections::HashSet<String>> =
        files.iter().map(|(name, paths)| (*name, paths.iter().flat_map(|p| ancestors(p)).collect())).collect();
    let volume_files: HashMap<&str, Vec<&str>> = prepared
        .file
        .containers
        .iter()
        .map(|decl| {
            let paths = decl.fields.iter().filter_map(|f| match &f.value {
                ContainerField::VolumeFile(p) => Some(p.as_str()),
                _ => None,
            });
            (decl.name.value.as_str(), paths.collect())
        })
        .collect();
    // Containers no node can make: containerd reads `/etc/passwd` and
    // `/etc/group` from an image (for the user's groups), and fails when
    // `/etc` is a file.
    let unmakeable: HashMap<&str, &str> = prepared
        .file
        .containers
        .iter()
        .filter(|decl| {
            decl.fields.iter().any(|f| matches!(&f.value, ContainerField::File { path, .. } if path == "/etc"))
        })
        .map(|decl| {
            (
                decl.name.value.as_str(),
                "cannot be made by containerd: its `/etc` is a file (containerd reads /etc/passwd)",
            )
        })
        .collect();
    // Each step: performed (with its actor), or skipped and why.
    let mut plans: Vec<(&StepResult, &Step, Actor)> = Vec::new();
    let mut host_skipped = 0;
    let mut unreal = 0;
    for prediction in &prepared.results {
        let Some(step) = prepared.file.steps.iter().find(|s| s.span == prediction.span) else { continue };
        let name = step.container.value.as_str();
        if !prepared.file.containers.iter().any(|d| d.name.value == name) {
            // `in host`: not a container. Its verdict is `allow` by
            // definition; the host side is covered by the probes test
            // (tasks outside containers are never decided).
            host_skipped += 1;
            continue;
        }
        // The step's user, as the scenario's checks resolved it (a name
        // the container does not declare is a problem of the file).
        let decl = prepared.file.containers.iter().find(|d| d.name.value == name);
        let uid = decl.and_then(|d| d.acting_user(step.user.as_ref().map(|u| &u.value))).map_or(0, |(id, _)| id);
        let actor = Actor {
            exe: step.actor.as_ref().map_or_else(|| "/bin/sh".to_string(), |a| a.value.clone()),
            name: step.actor_name.as_ref().map(|n| n.value.clone()),
            interactive: step.interactive,
            uid,
        };
        let line = line_of(&prepared.text, step.span.start);
        if let Some(why) = unmakeable.get(name) {
            println!("D4C-VMTEST-NOTE: {}:{line} skipped: container `{name}` {why}", path.display());
            unreal += 1;
            continue;
        }
        let both = op_paths(&step.op.value).into_iter().filter(|p| !is_dir(name, p)).find_map(|p| {
            if dirs.get(name).is_some_and(|d| d.contains(p)) {
                return Some(p.to_string());
            }
            ancestors(p).into_iter().find(|a| files.get(name).is_some_and(|f| f.contains(a.as_str())))
        });
        if let Some(both) = both {
            println!(
                "D4C-VMTEST-NOTE: {}:{line} skipped: the scenario has `{both}` both as a file and as a directory",
                path.display()
            );
            unreal += 1;
            continue;
        }
        // The kubelet and containerd mount /etc/hosts, /etc/hostname and
        // /etc/resolv.conf into every container: on a node they are
        // single-file mounts, never the root file system the scenario
        // says.
        let declared = volume_files.get(name).cloned().unwrap_or_default();
        let managed = op_paths(&step.op.value)
            .into_iter()
            .chain(std::iter::once(actor.exe.as_str()))
            .find(|p| NODE_FILES.contains(p) && !declared.contains(p));
        if let Some(managed) = managed {
            println!(
                "D4C-VMTEST-NOTE: {}:{line} skipped: on a node `{managed}` is a single-file mount (the kubelet's or \
                 containerd's), not the root file system the scenario has it on",
                path.display()
            );
            unreal += 1;
            continue;
        }
        plans.push((prediction, step, actor));
    }

    // The containers, with what the performed steps need in their images:
    // every parent directory a step names (directories are not decided),
    // but for those a step makes or moves there, and every actor's
    // executable.
    let mut specs = Vec::new();
    for (i, decl) in prepared.file.containers.iter().enumerate() {
        let name = decl.name.value.as_str();
        if unmakeable.contains_key(name) {
            continue;
        }
        let mut spec = spec_of(name, &decl.fields, index, i);
        // Declared users: the image's /etc/passwd is the scenario's.
        if let Some(passwd) = decl.passwd() {
            let lines: String = passwd.iter().map(|(user, id)| format!("{user}:x:{id}:{id}::/:/bin/sh\n")).collect();
            spec.passwd = Some(lines);
            if !spec.files.iter().any(|(f, _)| f == d4c_grammar::PASSWD) {
                spec.files.push((d4c_grammar::PASSWD.to_string(), DEFAULT_MODE));
            }
        }
        let mine = || plans.iter().filter(|(_, step, _)| step.container.value == name);
        let mut parents = BTreeSet::new();
        for (_, step, _) in mine() {
            for p in op_paths(&step.op.value) {
                parents.extend(
                    Path::new(p).parent().map(|d| d.to_string_lossy().into_owned()).filter(|d| !made_by_steps(name, d)),
                );
            }
        }
        spec.dirs.extend(parents.into_iter().filter(|d| d != "/"));
        for (_, _, actor) in mine() {
            let known = spec.files.iter().any(|(f, _)| *f == actor.exe) || spec.dirs.contains(&actor.exe);
            if !known && !files.get(name).is_some_and(|f| f.contains(actor.exe.as_str())) {
                spec.files.push((actor.exe.clone(), 0o755));
            }
        }
        specs.push(spec);
    }
    // The file's images in one import; then the containers.
    crate::bundle::prepare_images(&specs, &workdir)?;
    let mut containers: HashMap<String, Container> = HashMap::new();
    for spec in &specs {
        let container = Container::start(spec, &workdir)?;
        if let Some(decl) = prepared.file.containers.iter().find(|d| d.name.value == spec.name) {
            dir_modes(&container, &decl.fields)?;
        }
        containers.insert(spec.name.clone(), container);
    }

    // Stage every actor before any probe runs: staging execs the actor's
    // executable, which the policy must not see.
    let mut planned = Vec::new();
    for (prediction, step, actor) in plans {
        let container = containers
            .get_mut(&step.container.value)
            .ok_or_else(|| format!("no container `{}`", step.container.value))?;
        // An actor whose executable a step opens for writing or truncates
        // is staged just before its own step: a process running the file
        // would make that step fail with ETXTBSY.
        let staged = if written.contains(actor.exe.as_str()) {
            None
        } else {
            let staged = container.stage(&actor)?;
            Some((staged, container.staged_pid(staged)?))
        };
        planned.push(Planned { step, prediction, line: line_of(&prepared.text, step.span.start), actor, staged });
    }

    println!(
        "D4C-VMTEST-PROGRESS: {}: {} containers, {} actors staged; loading the probes",
        path.display(),
        containers.len(),
        planned.len()
    );
    let (mut daemon, delivery) = start_runtime(&prepared, &workdir, &containers, sink)?;
    let sender = delivery.sender();
    forward(&sender, &mut daemon, &mut Vec::new());
    println!("D4C-VMTEST-PROGRESS: {}: attached; performing", path.display());

    // Steps that failed (by index in `planned`), and each step's documents
    // as made: their ids, and what each must say.
    let mut failed_steps = BTreeSet::new();
    let mut made: Vec<StepDocuments> = Vec::new();
    for (n, plan) in planned.iter().enumerate() {
        let container = containers
            .get_mut(&plan.step.container.value)
            .ok_or_else(|| format!("no container `{}`", plan.step.container.value))?;
        let op = agent_op(&plan.step.op.value);
        let (staged, pid) = match plan.staged {
            Some(staged) => staged,
            None => {
                // Staged now, unseen: enforcement off, its records dropped.
                // A step may have emptied the file (truncate): its content
                // is no part of the scenario's state, so it gets an
                // executable's again, mode and name unchanged.
                restore_executable(container, &plan.actor.exe)?;
                daemon.set_enforce(false)?;
                let staged = container.stage(&plan.actor)?;
                let pid = container.staged_pid(staged)?;
                daemon.set_enforce(true)?;
                forward(&sender, &mut daemon, &mut Vec::new());
                (staged, pid)
            }
        };
        if verbose() {
            println!("D4C-VMTEST-PROGRESS: {}:{} `{op}`", path.display(), plan.line);
        }
        let outcome = container.perform(staged, &op)?;
        if verbose() {
            println!("D4C-VMTEST-PROGRESS: errno {}; draining", outcome.errno);
        }
        let mut ids = Vec::new();
        let all = forward(&sender, &mut daemon, &mut ids);
        if verbose() {
            println!("D4C-VMTEST-PROGRESS: {} records", all.len());
        }
        let records: Vec<Record> =
            all.into_iter().filter(|r| r.head.record == abi::RECORD_DECISION && r.head.tgid == pid).collect();
        let meta = prepared.containers.get(&plan.step.container.value).cloned().unwrap_or_default();
        let (problems, events) = check_step(&prepared, daemon.probes(), plan, &meta, outcome.errno, &records);
        // The step's documents: its actor's decisions (not the ends of
        // processes, which come when they exit).
        let ids = ids.into_iter().filter(|(doc_pid, action, _)| *doc_pid == pid && action != "end");
        made.push(StepDocuments {
            step: n,
            pid,
            ids: ids.map(|(_, _, id)| id).collect(),
            expected: documents::expected(&prepared.tables, &meta, &events, &plan.step.op.value, outcome.errno),
        });
        if !problems.is_empty() {
            failed_steps.insert(n);
            println!(
                "D4C-VMTEST-STEP: FAIL {}:{} `{op}`: {} [errno {} ({}); records: {}]",
                path.display(),
                plan.line,
                problems.join("; "),
                outcome.errno,
                outcome.detail,
                describe_records(&records)
            );
        }
    }

    let probes = daemon.probes();
    if print_stats {
        let stats = probes.stats();
        let counts: Vec<String> = stats
            .iter()
            .map(|s| format!("{}={}", s.name, s.verified_instructions.map_or("?".into(), |n| n.to_string())))
            .collect();
        println!("D4C-VMTEST-VERIFIER: {}", counts.join(" "));
    }
    let counters = probes.counters().map_err(|e| e.to_string())?;
    let named: Vec<String> =
        abi::COUNTER_NAMES.iter().zip(&counters).map(|(name, value)| format!("{name}={value}")).collect();
    println!("D4C-VMTEST-COUNTERS: {} {}", path.display(), named.join(" "));
    // The probes detach with the daemon (they are not pinned); delivery
    // then flushes everything to the endpoint.
    drop(daemon);
    drop(sender);
    let report = sink
        .tokio
        .block_on(delivery.shutdown(DELIVERY_GRACE))
        .map_err(|e| format!("{}: delivery did not shut down: {e}", path.display()))?;
    if report.left_in_queue > 0 {
        println!(
            "D4C-VMTEST-NOTE: {}: {} documents were not delivered within {DELIVERY_GRACE:?}",
            path.display(),
            report.left_in_queue
        );
    }
    let checked = check_documents(path, &planned, &containers, &made, &sink.endpoint, &mut failed_steps);
    for (_, container) in containers {
        container.stop()?;
    }
    let _ = std::fs::remove_dir_all(&workdir);
    Ok(Totals {
        steps: planned.len(),
        failed: failed_steps.len() + prepared.problems.len(),
        host_skipped: host_skipped + unreal,
        documents: checked,
    })
}

/// Starts the runtime's daemon in process, as a node's `d4c-runtime` would
/// run: the scenario's policy as its artifact, the probes loaded and
/// attached (not pinned), the containers found from their cgroups and
/// bundles; and its delivery to the guest's endpoint. The pods' labels,
/// which come from the Kubernetes API on a node, are applied as the API
/// watcher applies them. The runtime's view of each container must be the
/// scenario's: else the file cannot be run.
fn start_runtime(
    prepared: &Prepared,
    workdir: &Path,
    containers: &HashMap<String, Container>,
    sink: &Sink,
) -> Result<(Daemon, Delivery), String> {
    let artifact = workdir.join("policy.d4c");
    std::fs::write(&artifact, &prepared.artifact).map_err(|e| format!("{}: {e}", artifact.display()))?;
    let config_path = workdir.join("runtime.toml");
    let toml = format!(
        "artifact = \"{artifact}\"\nstate_dir = \"{workdir}/state\"\nnamespace = \"{namespace}\"\n\
         cluster_name = \"{cluster}\"\npin_dir = \"\"\n\
         [kubernetes]\nenabled = false\n\
         [delivery.sink.elasticsearch]\nurls = [\"http://{SINK}\"]\n[delivery.batch]\nflush_interval = \"100ms\"\n",
        artifact = artifact.display(),
        workdir = workdir.display(),
        namespace = SETUP.namespace,
        cluster = SETUP.cluster_name,
    );
    std::fs::write(&config_path, toml).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let config = d4c_runtime::config::read(Some(&config_path), [], &[])?;
    let delivery = {
        let _context = sink.tokio.enter();
        Delivery::start(config.delivery.clone(), &config.state_dir).map_err(|e| format!("delivery: {e}"))?
    };
    let mut daemon = Daemon::start(config).map_err(|e| format!("the runtime cannot start: {e}"))?;
    for (name, container) in containers {
        let cgroup_id = cgroup::cgroup_id(&container.cgroup_dir())?;
        let spec = container.spec();
        let meta = prepared.containers.get(name).cloned().unwrap_or_default();
        let mut found = daemon.containers().get(cgroup_id).cloned().ok_or_else(|| {
            format!(
                "the runtime did not find container `{name}` from its cgroup and bundle ({} containers)",
                daemon.containers().len()
            )
        })?;
        // What containerd really wrote into the bundle, and what the
        // runtime read of it, must agree.
        let written = written_metadata(container)?;
        let read = (
            found.id.as_str(),
            found.name.as_deref(),
            found.image.as_deref(),
            found.pod_name.as_deref(),
            found.namespace.as_deref(),
            found.pod_uid.as_deref(),
        );
        let wrote = (
            container.id(),
            written.name.as_deref(),
            written.image.as_deref(),
            written.pod_name.as_deref(),
            written.namespace.as_deref(),
            written.pod_uid.as_deref(),
        );
        if read != wrote {
            return Err(format!("the runtime read container `{name}` as {read:?}; containerd wrote {wrote:?}"));
        }
        check_sandbox(&daemon, container)?;
        let pod = PodInfo {
            uid: spec.pod_uid.clone(),
            name: container.pod().name.clone(),
            namespace: container.pod().namespace.clone(),
            labels: spec.labels.iter().cloned().collect(),
            ..PodInfo::default()
        };
        d4c_runtime::kube::apply(&mut found, &pod);
        // Cluster facts are the node's in the runtime, per container in a
        // scenario: the rows are made from the scenario's view, which must
        // otherwise be the runtime's wherever the scenario says something;
        // where it says nothing (no image, namespace or pod), the node
        // has one.
        let mut view = found.selector_view(meta.cluster_id.as_deref(), meta.cluster_name.as_deref());
        let mut scenario = meta.clone();
        view.labels.sort();
        scenario.labels.sort();
        let mut unsaid = Vec::new();
        if scenario.image_full_name.is_none() {
            unsaid.push(format!("image `{}`", found.image.as_deref().unwrap_or("?")));
            (view.image_full_name, view.image_name, view.image_tag) = (None, None, None);
        }
        if scenario.namespace.is_none() {
            unsaid.push(format!("namespace `{}`", found.namespace.as_deref().unwrap_or("?")));
            view.namespace = None;
        }
        if scenario.pod_name.is_none() {
            unsaid.push(format!("pod `{}`", found.pod_name.as_deref().unwrap_or("?")));
            view.pod_name = None;
        }
        if view != scenario {
            return Err(format!("the runtime sees container `{name}` as {view:?}, the scenario as {scenario:?}"));
        }
        if verbose() && !unsaid.is_empty() {
            println!(
                "D4C-VMTEST-NOTE: container `{name}`: the node gives it {} (the scenario names none)",
                unsaid.join(", ")
            );
        }
        // The container's /etc/passwd as the runtime read it from the
        // overlay root file system: the scenario's, when it declares users.
        if let Some(declared) = prepared.file.containers.iter().find(|d| d.name.value == *name).and_then(|d| d.passwd())
        {
            let read: Vec<(&str, u32)> = found.passwd.iter().map(|(id, n)| (n.as_str(), *id)).collect();
            if read != declared {
                return Err(format!(
                    "the runtime read container `{name}`'s /etc/passwd as {read:?}; the scenario declares {declared:?}"
                ));
            }
        }
        daemon.describe_as(cgroup_id, found, &meta)?;
    }
    Ok((daemon, delivery))
}

/// The CRI annotations containerd wrote into a container's bundle.
fn written_metadata(container: &Container) -> Result<d4c_runtime::containers::Metadata, String> {
    let path = container.bundle_dir().join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let get = |key: &str| {
        config
            .pointer(&format!("/annotations/io.kubernetes.cri.{key}"))
            .and_then(serde_json::Value::as_str)
            .map(String::from)
    };
    if get("container-type").as_deref() != Some("container") {
        return Err(format!("{}: container-type is {:?}, not `container`", path.display(), get("container-type")));
    }
    if get("sandbox-id").as_deref() != Some(container.sandbox_id()) {
        return Err(format!(
            "{}: sandbox-id is {:?}, not {}",
            path.display(),
            get("sandbox-id"),
            container.sandbox_id()
        ));
    }
    Ok(d4c_runtime::containers::Metadata {
        id: container.id().to_string(),
        name: get("container-name"),
        image: get("image-name"),
        pod_name: get("sandbox-name"),
        namespace: get("sandbox-namespace"),
        pod_uid: get("sandbox-uid"),
        ..Default::default()
    })
}

/// The pod's sandbox (pause) is a container of the kubepods tree too: the
/// runtime must have found it from its cgroup, and described it from its
/// bundle (`container-type: sandbox`) as the pod's, with no container
/// name or image of its own.
fn check_sandbox(daemon: &Daemon, container: &Container) -> Result<(), String> {
    let dir = container.cgroup_dir().parent().map(|pod| pod.join(container.sandbox_id())).unwrap_or_default();
    let id = cgroup::cgroup_id(&dir)?;
    let found = daemon.containers().get(id).ok_or_else(|| {
        format!(
            "the runtime did not find the sandbox {} of pod `{}`",
            crate::cri::short(container.sandbox_id()),
            container.pod().name
        )
    })?;
    let pod = container.pod();
    let got = (found.id.as_str(), found.pod_name.as_deref(), found.namespace.as_deref(), found.pod_uid.as_deref());
    let want = (container.sandbox_id(), Some(pod.name.as_str()), Some(pod.namespace.as_str()), Some(pod.uid.as_str()));
    if got != want || found.name.is_some() {
        return Err(format!(
            "the runtime describes the sandbox of pod `{}` as {found:?}; want id, pod, namespace, uid {want:?} and no container name",
            pod.name
        ));
    }
    Ok(())
}

/// Drains the daemon: its documents go to delivery; each one's actor's
/// pid (a fork that happened describes the new process: its parent is the
/// actor), `event.action` and id are added to `ids`. Returns the records
/// drained.
fn forward(sender: &DocumentSender, daemon: &mut Daemon, ids: &mut Vec<(u32, String, String)>) -> Vec<Record> {
    let mut made = Vec::new();
    let records = daemon.drain(&mut made);
    for document in made {
        let body: serde_json::Value = serde_json::from_slice(&document.body).unwrap_or_default();
        let number = |pointer: &str| body.pointer(pointer).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let action = body.pointer("/event/action").and_then(serde_json::Value::as_str).unwrap_or_default();
        let forked =
            action == "fork" && body.pointer("/event/type/0").and_then(serde_json::Value::as_str) != Some("denied");
        let pid = if forked { number("/process/parent/pid") } else { number("/process/pid") };
        ids.push((u32::try_from(pid).unwrap_or(0), action.to_owned(), document.id.clone()));
        if let Err(error) = sender.try_send(document) {
            println!("D4C-VMTEST-NOTE: delivery refused a document: {error}");
        }
    }
    records
}

/// A step's documents as the runtime made them, and what they must say.
struct StepDocuments {
    /// The step's index in the planned steps.
    step: usize,
    /// The actor's pid.
    pid: u32,
    /// The ids of the documents of the actor's decisions, in record order.
    ids: Vec<String>,
    /// What they must say, in the same order.
    expected: Vec<Expected>,
}

/// Waits for each step's documents at the endpoint and compares each with
/// its expectation; a step with a difference fails (added to `failed`).
/// Returns how many documents were checked.
fn check_documents(
    path: &Path,
    planned: &[Planned<'_>],
    containers: &HashMap<String, Container>,
    made: &[StepDocuments],
    endpoint: &BulkSink,
    failed: &mut BTreeSet<usize>,
) -> usize {
    let ids: BTreeSet<&str> = made.iter().flat_map(|m| m.ids.iter().map(String::as_str)).collect();
    let received = endpoint
        .wait_for(DELIVERY_GRACE, |docs| {
            let delivered: BTreeSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
            ids.is_subset(&delivered)
        })
        .unwrap_or_else(|partial| partial);
    let by_id: HashMap<&str, &Received> = received.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut checked = 0;
    for step in made {
        let Some(plan) = planned.get(step.step) else { continue };
        let Some(container) = containers.get(&plan.step.container.value) else { continue };
        let mut problems = Vec::new();
        if step.ids.len() != step.expected.len() {
            problems.push(format!(
                "the runtime made {} documents, the prediction {}",
                step.ids.len(),
                step.expected.len()
            ));
        }
        for (id, want) in step.ids.iter().zip(&step.expected) {
            let Some(got) = by_id.get(id.as_str()) else {
                problems.push(format!("document {id} was not delivered"));
                continue;
            };
            checked += 1;
            let acting = Acting {
                container: container.spec(),
                container_id: container.id(),
                pod: container.pod(),
                actor: &plan.actor,
                pid: step.pid,
            };
            for p in documents::compare(got, want, &SETUP, &acting) {
                problems.push(format!("{} document: {p}", if want.alert { "alert" } else { "log" }));
            }
        }
        if !problems.is_empty() {
            failed.insert(step.step);
            println!("D4C-VMTEST-STEP: FAIL {}:{} documents: {}", path.display(), plan.line, problems.join("; "));
        }
    }
    checked
}

/// Whether to print a line per step (`D4C_VMTEST_VERBOSE=1`, or
/// `d4c.verbose=1` on the kernel command line).
/// Read once.
fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| {
        std::env::var_os("D4C_VMTEST_VERBOSE").is_some_and(|v| v == "1")
            || std::fs::read_to_string("/proc/cmdline")
                .is_ok_and(|c| c.split_whitespace().any(|w| w == "d4c.verbose=1"))
    })
}

/// The 1-based line of byte `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).map_or(0, |t| t.matches('\n').count()) + 1
}

/// A container's spec from its scenario block, with a pod UID unique to
/// the file and the container.
fn spec_of(name: &str, fields: &[d4c_grammar::Spanned<ContainerField>], file: usize, index: usize) -> ContainerSpec {
    let mut spec = ContainerSpec {
        name: name.to_string(),
        pod_uid: format!("d4c0{file:04x}-0000-4000-8000-{index:012x}"),
        ..ContainerSpec::default()
    };
    for field in fields {
        match &field.value {
            ContainerField::Image(v) => spec.image = Some(v.clone()),
            ContainerField::Namespace(v) => spec.namespace = Some(v.clone()),
            ContainerField::Pod(v) => spec.pod = Some(v.clone()),
            ContainerField::Label { key, value } => spec.labels.push((key.clone(), value.clone())),
            ContainerField::Volume(p) => spec.volumes.push(p.clone()),
            ContainerField::VolumeFile(p) => spec.volume_files.push(p.clone()),
            ContainerField::File { path, mode } => spec.files.push((path.clone(), mode.unwrap_or(DEFAULT_MODE))),
            // In the image; a mode other than 0755 is set once it runs
            // (`dir_modes`).
            ContainerField::Dir { path, .. } => spec.dirs.push(path.clone()),
            ContainerField::ClusterId(_) | ContainerField::ClusterName(_) => {}
            // The file is the scenario's passwd (below).
            ContainerField::User { .. } => {}
        }
    }
    spec
}

/// Gives the `dir` fields' directories their modes, in a started container
/// (a host-side change: no probe decides it). The image makes them 0755.
fn dir_modes(container: &Container, fields: &[d4c_grammar::Spanned<ContainerField>]) -> Result<(), String> {
    for field in fields {
        if let ContainerField::Dir { path, mode: Some(mode) } = &field.value {
            if *mode == DEFAULT_DIR_MODE {
                continue;
            }
            let host = container.host_path(path)?;
            std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(*mode))
                .map_err(|e| format!("cannot chmod {mode:o} `{}`: {e}", host.display()))?;
        }
    }
    Ok(())
}

/// Gives the file at container path `exe`, if it exists, the agent
/// binary's content again (a guest-side write through the container's
/// root: no probe decides it).
fn restore_executable(container: &Container, exe: &str) -> Result<(), String> {
    let host = container.host_path(exe)?;
    if !host.is_file() {
        return Ok(());
    }
    let agent = crate::node::AGENT_BINARY;
    let mut source = std::fs::File::open(agent).map_err(|e| format!("{agent}: {e}"))?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&host)
        .map_err(|e| format!("cannot rewrite `{}`: {e}", host.display()))?;
    std::io::copy(&mut source, &mut target).map_err(|e| format!("cannot rewrite `{}`: {e}", host.display()))?;
    Ok(())
}

/// The paths a scenario operation names.
fn op_paths(op: &Op) -> Vec<&str> {
    match op {
        Op::Create { path, .. }
        | Op::Write(path)
        | Op::Truncate(path)
        | Op::Chmod { path, .. }
        | Op::Setfacl { path, .. }
        | Op::Mknod { path, .. }
        | Op::Unlink(path)
        | Op::Exec(path) => vec![path.value.as_str()],
        Op::Rename { from, to } | Op::Link { from, to } => vec![from.value.as_str(), to.value.as_str()],
        Op::Exchange { a, b } => vec![a.value.as_str(), b.value.as_str()],
        // The target of a link is text: it need not exist.
        Op::Symlink { link, .. } => vec![link.value.as_str()],
        Op::Mkdir { path, .. } => vec![path.value.as_str()],
        Op::Fork | Op::MemfdExec(_) => Vec::new(),
    }
}

/// The agent's form of a scenario operation.
fn agent_op(op: &Op) -> AgentOp {
    let mode = |m: &Option<d4c_grammar::Spanned<u32>>| m.as_ref().map_or(DEFAULT_MODE, |m| m.value);
    match op {
        Op::Create { path, mode: m } => AgentOp::Create { path: path.value.clone(), mode: mode(m) },
        Op::Write(p) => AgentOp::Write(p.value.clone()),
        Op::Truncate(p) => AgentOp::Truncate(p.value.clone()),
        Op::Chmod { path, mode } => AgentOp::Chmod { path: path.value.clone(), mode: mode.value },
        Op::Mknod { path, mode: m } => AgentOp::Mknod { path: path.value.clone(), mode: mode(m) },
        Op::Rename { from, to } => AgentOp::Rename { from: from.value.clone(), to: to.value.clone() },
        Op::Link { from, to } => AgentOp::Link { from: from.value.clone(), to: to.value.clone() },
        Op::Unlink(p) => AgentOp::Unlink(p.value.clone()),
        Op::Exec(p) => AgentOp::Exec(p.value.clone()),
        Op::Fork => AgentOp::Fork,
        Op::MemfdExec(name) => AgentOp::MemfdExec(name.value.clone()),
        Op::Mkdir { path, mode: m } => {
            AgentOp::Mkdir { path: path.value.clone(), mode: m.as_ref().map_or(DEFAULT_DIR_MODE, |m| m.value) }
        }
        Op::Symlink { target, link } => AgentOp::Symlink { target: target.value.clone(), link: link.value.clone() },
        Op::Exchange { a, b } => AgentOp::Exchange { a: a.value.clone(), b: b.value.clone() },
        Op::Setfacl { path, mode } => AgentOp::Setfacl { path: path.value.clone(), mode: mode.value },
    }
}

/// The event a decision record describes; `passwd`: the container's
/// `/etc/passwd` lines `(name, id)`, which name the record's user.
fn record_event(record: &Record, passwd: &[(&str, u32)]) -> Option<Event> {
    let h = &record.head;
    if h.kind == abi::KIND_FILE {
        let operation = *Operation::of_kind(Kind::File).get(h.op as usize)?;
        let volume = match h.volume {
            abi::VOLUME_ROOTFS => Volume::RootFs,
            abi::VOLUME_DIR => Volume::Volume,
            abi::VOLUME_FILE => Volume::VolumeFile,
            _ => return None,
        };
        let path = (h.flags & abi::EV_HAS_PATH != 0).then(|| record.path_text());
        let directory = h.flags & abi::EV_DIRECTORY != 0;
        Some(Event::File(FileEvent { operation, path, volume, directory }))
    } else {
        let operation = *Operation::of_kind(Kind::Process).get(h.op as usize)?;
        Some(Event::Process(ProcessEvent {
            operation,
            executable: record.path_text(),
            name: record.name_text(),
            interactive: h.flags & abi::EV_INTERACTIVE != 0,
            user: d4c_artifact::event::User {
                id: h.euid,
                name: passwd.iter().find(|&&(_, id)| id == h.euid).map(|&(name, _)| name.to_string()),
            },
        }))
    }
}

/// What is wrong with a step's outcome, in words (empty: it passed), and
/// the events the kernel had to report (the predicted ones with actions,
/// in order; a fileless exec's name as the kernel gave it).
fn check_step(
    prepared: &Prepared,
    probes: &Probes,
    plan: &Planned<'_>,
    meta: &Meta,
    errno: i32,
    records: &[Record],
) -> (Vec<String>, Vec<Event>) {
    let tables: &Tables = &prepared.tables;
    let predicted = plan.prediction;
    let memfd = matches!(plan.step.op.value, Op::MemfdExec(_));
    let mut problems = Vec::new();

    // Refused exactly when blocked. An exec the LSM allowed of a file with
    // no binary format (one a step created: it is empty) fails later, in
    // the kernel's format search, with ENOEXEC: allowed as far as d4c goes.
    let errno = if matches!(plan.step.op.value, Op::Exec(_)) && errno == ENOEXEC { 0 } else { errno };
    let blocks = predicted.actual_actions.contains(Actions::BLOCK);
    if blocks && errno != EPERM {
        problems.push(format!("predicted a block, but the syscall returned errno {errno}, not EPERM"));
    }
    if !blocks && errno != 0 {
        problems.push(format!("predicted no block, but the syscall failed with errno {errno}"));
    }

    // The records: the predicted events that have actions.
    let mut expected: Vec<Event> =
        predicted.events.iter().filter(|e| tables.decide(meta, e).actions != Actions::NONE).cloned().collect();
    let mut got: Vec<Event> = Vec::new();
    let mut actions = Actions::NONE;
    let mut names = BTreeSet::new();
    let passwd = prepared
        .file
        .containers
        .iter()
        .find(|d| d.name.value == plan.step.container.value)
        .and_then(|d| d.passwd())
        .unwrap_or_else(|| vec![(d4c_grammar::ROOT, 0)]);
    for record in records {
        let Some(event) = record_event(record, &passwd) else {
            problems.push(format!("a record the runner cannot read: {:?}", record.head));
            continue;
        };
        let kind = event.kind();
        actions = actions.union(Actions::from_bits(u8::try_from(record.head.actions).unwrap_or(u8::MAX)));
        // The kernel's row entry, explained: which selectors it matched.
        for i in probes.matched_selectors(record) {
            if let Some(selector) = tables.kind(kind).selectors.get(i) {
                names.insert(selector.name.clone());
            }
        }
        // The kernel decided its event as the table evaluator does.
        let table = tables.decide(meta, &event);
        if table.actions.bits() != u8::try_from(record.head.actions).unwrap_or(u8::MAX) {
            problems.push(format!(
                "the kernel decided {:?} for its event {event:?}, the table evaluator {:?}",
                record.head.actions, table.actions
            ));
        }
        if record.head.flags & abi::EV_PENDING != 0 {
            problems.push("the container was treated as pending (its metadata was registered)".into());
        }
        if record.head.flags & abi::EV_OUTSIDE != 0 {
            problems.push("the decision was made on a path outside the container's root".into());
        } else if record.head.flags & abi::EV_TRUNCATED != 0 {
            problems.push("the path was not resolved whole".into());
        }
        got.push(event);
    }
    if memfd {
        // The comm of a fexecve'd memfd is the kernel's choice: take it.
        for (g, e) in got.iter().zip(expected.iter_mut()) {
            if let (Event::Process(g), Event::Process(e)) = (g, e) {
                if g.name != e.name {
                    println!(
                        "D4C-VMTEST-NOTE: memfd exec comm is `{}` on this kernel (predicted `{}`)",
                        g.name, e.name
                    );
                    e.name = g.name.clone();
                }
            }
        }
        expected.retain(|e| tables.decide(meta, e).actions != Actions::NONE);
    } else {
        if actions != predicted.actual_actions {
            problems.push(format!(
                "the kernel's actions {} differ from the predicted {}",
                actions_text(actions),
                actions_text(predicted.actual_actions)
            ));
        }
        if names != predicted.actual_selectors {
            problems.push(format!(
                "the kernel's rows matched {:?}, the prediction {:?}",
                names, predicted.actual_selectors
            ));
        }
    }
    if got != expected {
        problems.push(format!("the kernel reported {got:?}, the prediction is {expected:?}"));
    }
    (problems, expected)
}

fn actions_text(actions: Actions) -> String {
    let mut words = Vec::new();
    for (bit, word) in [(Actions::LOG, "log"), (Actions::ALERT, "alert"), (Actions::BLOCK, "block")] {
        if actions.contains(bit) {
            words.push(word);
        }
    }
    if words.is_empty() {
        "allow".into()
    } else {
        words.join(",")
    }
}

fn describe_records(records: &[Record]) -> String {
    if records.is_empty() {
        return "none".into();
    }
    records
        .iter()
        .map(|r| {
            format!(
                "{{kind {} op {} vol {} flags {:#x} actions {} class {} row {} path `{}` name `{}`}}",
                r.head.kind,
                r.head.op,
                r.head.volume,
                r.head.flags,
                r.head.actions,
                r.head.dyn_class,
                r.head.row,
                r.path_text(),
                r.name_text()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The overhead benchmark (issues 4 and 16): a syscall-heavy loop in a
/// container (create, write, chmod, unlink, fork+exec:
/// [`AgentOp::Workload`]) timed without probes and with them, `rounds`
/// times each in one boot, for the default policy and a generated
/// 1,000-selector one. Prints one `D4C-VMTEST-BENCH:` line per policy: the
/// ratio of the sums, and the rounds' ratios with their mean and 95%
/// confidence interval, which says whether the overhead is below 3%.
pub fn bench(iterations: u32, rounds: u32) -> Result<(), String> {
    let default =
        std::fs::read("/deploy/policies/default.yaml").map_err(|e| format!("/deploy/policies/default.yaml: {e}"))?;
    let generated = d4c_testgen::generate_policy(1000, 7).into_bytes();
    let mut failed = Vec::new();
    for (name, policy) in [("1000-selectors", generated), ("default", default)] {
        // A policy whose run fails is said so; the other still runs.
        match bench_policy(name, &policy, iterations, rounds.max(1)) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                println!("D4C-VMTEST-NOTE: bench policy={name} failed: {}", e.replace('\n', " | "));
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("policies {failed:?} could not be measured"))
    }
}

/// The mean of `ratios` and the half-width of its 95% confidence interval
/// (Student's t). One round bounds nothing: its half-width is infinite.
pub fn mean_and_interval(ratios: &[f64]) -> (f64, f64) {
    let n = ratios.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = ratios.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::INFINITY);
    }
    let variance = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    // t(0.975, n - 1) for 1..=30 degrees of freedom; then t(0.975, 30),
    // which is above every later value, up to 60, and 2.0 past that.
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    let t = T.get(n - 2).copied().unwrap_or(if n <= 61 { 2.042 } else { 2.0 });
    (mean, t * (variance / n as f64).sqrt())
}

/// What the interval says of a 3% overhead.
fn verdict_of(mean: f64, half: f64) -> &'static str {
    if mean + half < 1.03 {
        "below-3%"
    } else if mean - half > 1.03 {
        "above-3%"
    } else {
        "undecided"
    }
}

/// One policy's overhead figures, as the `D4C-VMTEST-BENCH:` line.
fn bench_policy(name: &str, policy: &[u8], iterations: u32, rounds: u32) -> Result<String, String> {
    let tables = tables_of(policy).map_err(|e| format!("policy {name}: {e}"))?;
    let workdir = PathBuf::from(WORKDIR).join(format!("bench-{name}"));
    std::fs::create_dir_all(&workdir).map_err(|e| format!("cannot create `{}`: {e}", workdir.display()))?;
    let spec = ContainerSpec {
        name: "bench".into(),
        pod_uid: format!("be4c0000-0000-4000-8000-{:012x}", name.len()),
        image: Some("docker.io/library/nginx:1.25".into()),
        namespace: Some("bench".into()),
        pod: Some("bench".into()),
        files: vec![("/tmp/.keep".into(), 0o644), ("/usr/bin/worker".into(), 0o755)],
        ..ContainerSpec::default()
    };
    let mut container = Container::start(&spec, &workdir)?;
    let actor = Actor { exe: "/usr/bin/worker".into(), name: None, interactive: false, uid: 0 };
    // One staged process more: a first, untimed run warms the container
    // (its first writes copy `/tmp` up, its first exec reads the worker),
    // which would otherwise fall on the first timing's side alone.
    let mut staged: Vec<u32> = (0..=rounds * 2).map(|_| container.stage(&actor)).collect::<Result<_, _>>()?;
    let op = AgentOp::Workload { dir: "/tmp".into(), exe: "/usr/bin/worker".into(), iterations };
    let warm = staged.pop().ok_or("staging")?;
    let time = |container: &mut Container, staged: u32| -> Result<u64, String> {
        let outcome = container.perform(staged, &op)?;
        if outcome.errno != 0 {
            return Err(format!("the workload failed: {}", outcome.detail));
        }
        outcome
            .detail
            .strip_prefix("ns=")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("no time in `{}`", outcome.detail))
    };
    time(&mut container, warm)?;
    let (mut base, mut probed) = (0u64, 0u64);
    let mut ratios = Vec::new();
    let mut verified = String::new();
    for (round, pair) in staged.chunks(2).enumerate() {
        let [first, second] = pair else { return Err("staging".into()) };
        // One container class: d4c_rows is preallocated, (classes + 2)
        // entries a row. Report only: a generated policy may block the
        // workload's own operations; every decision is still made.
        let settings = Settings { max_rows: 1, enforce: false, ..Settings::default() };
        let meta = Meta { image_name: Some("nginx".into()), namespace: Some("bench".into()), ..Meta::default() };
        // Odd rounds run with the probes first: a drift of the host
        // over the boot falls on both sides alike.
        let (off, on) = if round % 2 == 0 {
            let off = time(&mut container, *first)?;
            let mut probes = attach_probes(&tables, settings, &container, &meta)?;
            let on = time(&mut container, *second)?;
            let records = probes.drain().map_err(|e| e.to_string())?.len();
            if round == 0 {
                verified = format!("records={records}");
            }
            (off, on)
        } else {
            let mut probes = attach_probes(&tables, settings, &container, &meta)?;
            let on = time(&mut container, *first)?;
            probes.drain().map_err(|e| e.to_string())?;
            drop(probes);
            (time(&mut container, *second)?, on)
        };
        base += off;
        probed += on;
        ratios.push(on as f64 / off.max(1) as f64);
    }
    container.stop()?;
    let _ = std::fs::remove_dir_all(&workdir);
    let per = |ns: u64| ns as f64 / f64::from(iterations.saturating_mul(rounds).max(1)) / 1000.0;
    let (mean, half) = mean_and_interval(&ratios);
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    Ok(format!(
        "D4C-VMTEST-BENCH: policy={name} iterations={} rounds={rounds} without={:.1}us with={:.1}us ratio={:.3} mean={mean:.3} ci95=±{half:.3} {} rounds_ratios={} {verified}",
        iterations * rounds,
        per(base),
        per(probed),
        probed as f64 / base.max(1) as f64,
        verdict_of(mean, half),
        each.join(",")
    ))
}

/// The probes loaded with `tables` and attached: the kubepods roots and
/// `container` (described as `meta`) registered, the records of the
/// loading drained.
pub(crate) fn attach_probes(
    tables: &Tables,
    settings: Settings,
    container: &Container,
    meta: &Meta,
) -> Result<Probes, String> {
    let mut probes = Probes::load(tables.clone(), settings).map_err(|e| format!("cannot load the probes: {e}"))?;
    for root in cgroup::find_kubepods_roots(Path::new(CGROUPFS), cgroup::DEFAULT_MAX_DEPTH)? {
        probes.add_kubepods_root(root.id).map_err(|e| e.to_string())?;
    }
    let id = cgroup::cgroup_id(&container.cgroup_dir())?;
    probes.add_container(id, meta, &[]).map_err(|e| e.to_string())?;
    probes.attach().map_err(|e| format!("cannot attach the probes: {e}"))?;
    probes.drain().map_err(|e| e.to_string())?;
    Ok(probes)
}

/// Drains the probes; returns the decision records of process `pid`.
pub(crate) fn decisions_of(probes: &mut Probes, pid: u32) -> Result<Vec<Record>, String> {
    let records = probes.drain().map_err(|e| e.to_string())?;
    Ok(records.into_iter().filter(|r| r.head.record == abi::RECORD_DECISION && r.head.tgid == pid).collect())
}

/// The tables of a policy's YAML text.
pub(crate) fn tables_of(policy: &[u8]) -> Result<Tables, String> {
    let (_, lint) = d4cc::lint::lint_bytes("policy.yaml", policy.to_vec());
    let checked = lint.checked.ok_or("the policy has errors")?;
    let options = d4cc::compile::CompileOptions { policy_name: "bench".into(), revision: 0, created_unix: None };
    let bytes = d4cc::compile::compile(policy, &checked, &options).map_err(|e| e.to_string())?;
    let aligned = d4c_artifact::aligned_copy(&bytes);
    let artifact = d4c_artifact::Artifact::parse(&aligned).map_err(|e| e.to_string())?;
    Tables::read(&artifact).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{mean_and_interval, verdict_of};

    #[test]
    fn the_bench_interval_says_below_above_or_undecided() {
        let (mean, half) = mean_and_interval(&[1.01, 1.00, 1.02, 1.01]);
        assert!((mean - 1.01).abs() < 1e-9);
        // sd 0.00816, t(3) 3.182: half-width 0.0130.
        assert!((half - 0.0130).abs() < 1e-3, "{half}");
        assert_eq!(verdict_of(mean, half), "below-3%");
        assert_eq!(verdict_of(1.10, 0.02), "above-3%");
        assert_eq!(verdict_of(1.02, 0.05), "undecided");
        // One round says nothing.
        let (mean, half) = mean_and_interval(&[1.0]);
        assert_eq!(verdict_of(mean, half), "undecided");
        assert_eq!(mean_and_interval(&[]), (0.0, 0.0));
        // Past ten degrees of freedom, t is still above 2 (12 rounds: 2.201).
        let twelve = [1.0, 1.02, 1.0, 1.02, 1.0, 1.02, 1.0, 1.02, 1.0, 1.02, 1.0, 1.02];
        let (_, half) = mean_and_interval(&twelve);
        let sd = (12.0_f64 * 0.01 * 0.01 / 11.0).sqrt();
        assert!((half - 2.201 * sd / 12.0_f64.sqrt()).abs() < 1e-9, "{half}");
    }
}
