//! `d4c-vmtest smoke`: the infrastructure's own test, run in the guest.
//!
//! Starts two containers of one pod at once, made by containerd through
//! the CRI: one with an emptyDir volume, a single-file volume and files
//! with and without execute bits; one with a ConfigMap volume and a
//! hostPath volume. Stages every actor first (interactive ones, one with a
//! custom name, one whose basename is longer than 15 bytes, one whose
//! executable only staging creates), checks each from the guest (`comm`,
//! `exe`, cgroup, session, controlling terminal), then performs every
//! [`AgentOp`] once plus a few that must fail with a known errno, and
//! checks each effect from the guest (through `/proc/<agent>/root`).
//! Finally stops both and checks that their bundles, their cgroups, the
//! sandbox's and the pod's cgroup are gone.
//!
//! Out: a summary (`containers=2 ops=N ...`) or the first failure, naming
//! the container and step.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use crate::bundle::{Actor, AgentOp, Container, ContainerSpec, CGROUP_ROOT};
use crate::node;

/// Where `smoke` builds its bundle when no directory is given.
pub const DEFAULT_WORKDIR: &str = "/tmp/d4c-vmtest-smoke";

/// What the guest must see after an op.
enum Effect {
    /// Nothing to check beyond the errno.
    None,
    /// A regular file at this container path with exactly this mode.
    File(&'static str, u32),
    /// A regular file of size 0.
    Empty(&'static str),
    /// Nothing at this container path.
    Gone(&'static str),
    /// Nothing at the first path; a regular file at the second.
    Moved(&'static str, &'static str),
    /// A regular file with this mode, on a volume: another device than
    /// the container's root (the overlay).
    OnVolume(&'static str, u32),
    /// Two names of one inode with two links.
    Linked(&'static str, &'static str),
}

struct Step {
    actor: usize,
    op: AgentOp,
    errno: i32,
    effect: Effect,
}

fn spec() -> ContainerSpec {
    ContainerSpec {
        name: "smoke".into(),
        pod_uid: "0d4c0000-5a0e-4e57-8000-00000000d4c0".into(),
        image: Some("docker.io/library/debian:12".into()),
        namespace: Some("default".into()),
        pod: Some("smoke-pod".into()),
        labels: vec![("app".into(), "smoke".into())],
        volumes: vec!["/data".into()],
        volume_files: vec!["/etc/config.yaml".into()],
        files: vec![
            ("/usr/bin/tool".into(), 0o755),
            ("/etc/motd".into(), 0o644),
            ("/srv/old.txt".into(), 0o644),
            ("/data/existing.txt".into(), 0o640),
        ],
        ..ContainerSpec::default()
    }
}

fn actors() -> Vec<Actor> {
    vec![
        Actor { exe: "/usr/bin/tool".into(), name: None, interactive: true, uid: 0 },
        Actor {
            exe: "/usr/local/bin/a-helper-with-a-long-name".into(),
            name: Some("custom-name".into()),
            interactive: false,
            uid: 0,
        },
        Actor { exe: "/usr/local/bin/a-helper-with-a-long-name".into(), name: None, interactive: false, uid: 0 },
        // Not among the spec's files: staging creates it.
        Actor { exe: "/bin/sh".into(), name: None, interactive: false, uid: 0 },
    ]
}

fn steps() -> Vec<Step> {
    let s = |actor, op, errno, effect| Step { actor, op, errno, effect };
    let p = |x: &str| x.to_string();
    vec![
        // umask 0: every bit of the mode arrives.
        s(0, AgentOp::Create { path: p("/data/new.sh"), mode: 0o777 }, 0, Effect::File("/data/new.sh", 0o777)),
        s(1, AgentOp::Create { path: p("/srv/new.txt"), mode: 0o640 }, 0, Effect::File("/srv/new.txt", 0o640)),
        s(2, AgentOp::Write(p("/etc/motd")), 0, Effect::File("/etc/motd", 0o644)),
        s(3, AgentOp::Write(p("/etc/config.yaml")), 0, Effect::File("/etc/config.yaml", 0o644)),
        s(0, AgentOp::Truncate(p("/srv/old.txt")), 0, Effect::Empty("/srv/old.txt")),
        s(1, AgentOp::Chmod { path: p("/etc/motd"), mode: 0o600 }, 0, Effect::File("/etc/motd", 0o600)),
        s(2, AgentOp::Mknod { path: p("/srv/node"), mode: 0o750 }, 0, Effect::File("/srv/node", 0o750)),
        s(
            3,
            AgentOp::Rename { from: p("/srv/new.txt"), to: p("/srv/renamed.txt") },
            0,
            Effect::Moved("/srv/new.txt", "/srv/renamed.txt"),
        ),
        s(
            0,
            AgentOp::Link { from: p("/srv/renamed.txt"), to: p("/srv/linked.txt") },
            0,
            Effect::Linked("/srv/renamed.txt", "/srv/linked.txt"),
        ),
        s(1, AgentOp::Unlink(p("/srv/node")), 0, Effect::Gone("/srv/node")),
        s(0, AgentOp::Exec(p("/usr/bin/tool")), 0, Effect::None),
        s(1, AgentOp::Fork, 0, Effect::None),
        s(0, AgentOp::MemfdExec(p("payload")), 0, Effect::None),
        // Failures come back with the kernel's errno.
        s(3, AgentOp::Exec(p("/etc/motd")), libc::EACCES, Effect::None),
        s(0, AgentOp::Unlink(p("/srv/missing")), libc::ENOENT, Effect::None),
        s(
            1,
            AgentOp::Create { path: p("/srv/renamed.txt"), mode: 0o644 },
            libc::EEXIST,
            Effect::File("/srv/renamed.txt", 0o640),
        ),
        // The volume is a real mount: rename out of it crosses devices.
        s(
            2,
            AgentOp::Rename { from: p("/data/new.sh"), to: p("/srv/new.sh") },
            libc::EXDEV,
            Effect::File("/data/new.sh", 0o777),
        ),
    ]
}

/// The second container: same pod, a ConfigMap volume (read-only, as the
/// kubelet mounts it: a write fails with EROFS) and a hostPath volume.
fn volumes_case() -> Case {
    let base = spec();
    Case {
        spec: ContainerSpec {
            name: "volumes".into(),
            volumes: vec![],
            volume_files: vec![],
            config_maps: vec!["/etc/conf".into()],
            host_paths: vec!["/srv/host".into()],
            files: vec![("/usr/bin/tool".into(), 0o755), ("/etc/conf/app.yaml".into(), 0o644)],
            ..base
        },
        actors: vec![Actor { exe: "/usr/bin/tool".into(), name: None, interactive: true, uid: 0 }],
        steps: vec![
            Step {
                actor: 0,
                op: AgentOp::Create { path: "/srv/host/made".into(), mode: 0o600 },
                errno: 0,
                effect: Effect::OnVolume("/srv/host/made", 0o600),
            },
            Step { actor: 0, op: AgentOp::Exec("/usr/bin/tool".into()), errno: 0, effect: Effect::None },
            Step {
                actor: 0,
                op: AgentOp::Write("/etc/conf/app.yaml".into()),
                errno: libc::EROFS,
                effect: Effect::None,
            },
        ],
    }
}

/// One container's part of the test.
struct Case {
    spec: ContainerSpec,
    actors: Vec<Actor>,
    steps: Vec<Step>,
}

/// Runs the smoke test with bundles under `workdir`. Returns the summary.
///
/// Both containers run at once, in one pod. As the scenario runner will,
/// every actor of every step is staged (and checked) before any op runs.
pub fn run(workdir: &Path) -> Result<String, String> {
    let cases = [Case { spec: spec(), actors: actors(), steps: steps() }, volumes_case()];
    let t0 = Instant::now();
    let mut containers = Vec::new();
    for case in &cases {
        containers.push(Container::start(&case.spec, workdir)?);
    }
    let t_start = t0.elapsed();

    let t1 = Instant::now();
    let mut staged: Vec<Vec<u32>> = Vec::new();
    for (c, case) in containers.iter_mut().zip(&cases) {
        let mut ids = Vec::new();
        for (n, step) in case.steps.iter().enumerate() {
            let actor = case.actors.get(step.actor).ok_or_else(|| format!("step {n}: no actor {}", step.actor))?;
            ids.push(c.stage(actor)?);
        }
        staged.push(ids);
    }
    let t_stage = t1.elapsed();

    let mut exe_forms = BTreeSet::new();
    for ((c, case), ids) in containers.iter().zip(&cases).zip(&staged) {
        for (step, &id) in case.steps.iter().zip(ids) {
            let actor = case.actors.get(step.actor).ok_or_else(|| format!("no actor {}", step.actor))?;
            let form =
                check_actor(c, id, actor).map_err(|e| format!("{}: staged {id} ({actor}): {e}", case.spec.name))?;
            exe_forms.insert(form);
        }
    }

    let t2 = Instant::now();
    let mut ops = 0;
    let mut memfd_comms = BTreeSet::new();
    for ((c, case), ids) in containers.iter_mut().zip(&cases).zip(&staged) {
        for (n, (step, &id)) in case.steps.iter().zip(ids).enumerate() {
            let outcome = c.perform(id, &step.op)?;
            let what = format!("{} step {n} `{}`", case.spec.name, step.op);
            if outcome.errno != step.errno || outcome.killed_by.is_some() {
                return Err(format!("{what}: want errno {}, got {outcome:?}", step.errno));
            }
            check_effect(c, &step.effect).map_err(|e| format!("{what}: {e}"))?;
            match (&step.op, step.errno) {
                (AgentOp::Exec(path), 0) => {
                    let want = path.rsplit('/').next().unwrap_or_default();
                    if outcome.exec_comm.as_deref() != Some(want) {
                        return Err(format!("{what}: exec'd image's comm is {:?}, want {want:?}", outcome.exec_comm));
                    }
                }
                (AgentOp::MemfdExec(_), 0) => {
                    let comm = outcome.exec_comm.ok_or_else(|| format!("{what}: no comm reported"))?;
                    memfd_comms.insert(comm);
                }
                _ if outcome.exec_comm.is_some() => {
                    return Err(format!("{what}: an exec'd image reported, yet the op execs nothing or failed"));
                }
                _ => {}
            }
            ops += 1;
        }
    }
    let t_perform = t2.elapsed();

    let t3 = Instant::now();
    let pod_cgroup = containers.first().and_then(|c| c.cgroup_dir().parent().map(Path::to_path_buf));
    let mut leftovers = Vec::new();
    // In reverse: the pod's cgroup must outlive its first container.
    while let Some(c) = containers.pop() {
        leftovers.push(c.bundle_dir().to_path_buf());
        leftovers.push(c.cgroup_dir());
        leftovers.extend(c.cgroup_dir().parent().map(|pod| pod.join(c.sandbox_id())));
        leftovers.push(node::KubeletDirs::guest().pod(&c.pod().uid));
        c.stop()?;
    }
    let t_stop = t3.elapsed();
    leftovers.extend(pod_cgroup);
    if let Some(left) = leftovers.iter().find(|p| p.exists()) {
        return Err(format!("after stop, {} still exists", left.display()));
    }
    let forms: Vec<&str> = exe_forms.into_iter().collect();
    Ok(format!(
        "containers={} ops={ops} actors={} exe-link={} memfd-exec-comm={} start={:.2}s stage={:.2}s perform={:.2}s stop={:.2}s {}",
        cases.len(),
        staged.iter().map(Vec::len).sum::<usize>(),
        forms.join("+"),
        memfd_comms.into_iter().collect::<Vec<_>>().join("+"),
        t_start.as_secs_f64(),
        t_stage.as_secs_f64(),
        t_perform.as_secs_f64(),
        t_stop.as_secs_f64(),
        node::timings().summary()
    ))
}

/// Checks a staged actor from the guest's side: comm, exe, cgroup, session
/// and terminal. Returns how `/proc/<pid>/exe` reads (`container-path` or
/// `guest-path`), which depends on where the reader's root is.
fn check_actor(c: &Container, id: u32, actor: &Actor) -> Result<&'static str, String> {
    let pid = c.staged_pid(id)?;
    let read =
        |what: &str| fs::read_to_string(format!("/proc/{pid}/{what}")).map_err(|e| format!("/proc/{pid}/{what}: {e}"));
    let comm = read("comm")?;
    let basename = actor.exe.rsplit('/').next().unwrap_or_default();
    let want: String = actor.name.as_deref().unwrap_or(basename).bytes().take(15).map(char::from).collect();
    if comm.trim_end_matches('\n') != want {
        return Err(format!("comm is {comm:?}, want {want:?}"));
    }
    let exe = fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| format!("/proc/{pid}/exe: {e}"))?;
    let form = if exe == Path::new(&actor.exe) {
        "container-path"
    } else if exe == c.host_path(&actor.exe)? {
        "guest-path"
    } else {
        return Err(format!("exe is {}, want {} (or its guest path)", exe.display(), actor.exe));
    };
    let cgroup = read("cgroup")?;
    let want_cgroup = c.cgroup_dir();
    let want_cgroup = want_cgroup.strip_prefix(CGROUP_ROOT).map_err(|e| e.to_string())?;
    let want_line = format!("0::/{}", want_cgroup.display());
    if !cgroup.lines().any(|l| l == want_line) {
        return Err(format!("cgroup is {cgroup:?}, want the line {want_line:?}"));
    }
    let stat = read("stat")?;
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| format!("odd stat {stat:?}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let (Some(session), Some(tty)) = (fields.get(3), fields.get(4)) else {
        return Err(format!("odd stat {stat:?}"));
    };
    if *session != pid.to_string() {
        return Err(format!("session is {session}, want {pid} (a session leader)"));
    }
    if (*tty != "0") != actor.interactive {
        return Err(format!("tty_nr is {tty}, want {}", if actor.interactive { "a terminal" } else { "none (0)" }));
    }
    Ok(form)
}

fn check_effect(c: &Container, effect: &Effect) -> Result<(), String> {
    let meta = |path: &str| -> Result<fs::Metadata, String> {
        let host = c.host_path(path)?;
        fs::symlink_metadata(&host).map_err(|e| format!("{path} ({}): {e}", host.display()))
    };
    match effect {
        Effect::None => Ok(()),
        Effect::File(path, mode) => {
            let m = meta(path)?;
            let got = m.permissions().mode();
            if !m.file_type().is_file() || got & 0o7777 != *mode {
                return Err(format!("{path}: want a regular file with mode {mode:04o}, got mode {got:o}"));
            }
            Ok(())
        }
        Effect::Empty(path) => match meta(path)?.len() {
            0 => Ok(()),
            n => Err(format!("{path}: want size 0, got {n}")),
        },
        Effect::Gone(path) => match meta(path) {
            Err(_) => Ok(()),
            Ok(_) => Err(format!("{path} still exists")),
        },
        Effect::OnVolume(path, mode) => {
            check_effect(c, &Effect::File(path, *mode))?;
            let root = meta("/")?;
            if meta(path)?.dev() == root.dev() {
                return Err(format!("{path} is on the container's root file system (device {})", root.dev()));
            }
            Ok(())
        }
        Effect::Moved(from, to) => {
            check_effect(c, &Effect::Gone(from))?;
            check_effect(c, &Effect::File(to, 0o640))
        }
        Effect::Linked(a, b) => {
            let (ma, mb) = (meta(a)?, meta(b)?);
            if ma.ino() != mb.ino() || ma.nlink() != 2 {
                return Err(format!(
                    "{a} and {b}: want one inode with 2 links, got {}/{} links {}",
                    ma.ino(),
                    mb.ino(),
                    ma.nlink()
                ));
            }
            Ok(())
        }
    }
}
