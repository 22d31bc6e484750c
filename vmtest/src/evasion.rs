//! `d4c-vmtest evasion`: the ways around drift prevention that scenario
//! files cannot write, as real syscalls in a real runc container under the
//! real probes (enforcing).
//!
//! In: `testdata/scenarios/evasion.d4ct`, for its policy
//! (`testdata/policies/valid/evasion-guard.yaml`, compiled by
//! [`d4cc::scenario::prepare`]) and its container `app`'s metadata. Out:
//! one `D4C-VMTEST-EVASION-CASE:` line per case, with what the kernel did,
//! and a summary, or the failed cases.
//!
//! The cases reach a protected place by a second spelling of its path (a
//! symlink, `..`, `/proc/self/root`, a bind mount the container made), by
//! a file with no name (`O_TMPFILE`, then `fchmod` or `linkat`),
//! or by a path the kernel cannot walk whole (longer than PATH_MAX), with
//! the deep but short paths and the exact 4,096-byte edge beside them.
//! Each is one [`AgentOp::Sequence`] of one staged actor, checked:
//!
//! - the sequence stopped at the expected op with the expected errno
//!   (EPERM), or all of it succeeded;
//! - the actor's decision records are exactly the expected ones:
//!   operation, path ([`Record::path_text`]: the path as the container sees
//!   it, whatever the syscall said), volume and `truncated` flag;
//! - each record's actions are the table evaluator's for the same event;
//!   a truncated one's hold `block` (fail closed);
//! - what the guest sees of the rootfs afterwards: a refused file is not
//!   there, an allowed one is.
//!
//! Set-up (the symlink, the bind mount, the directory chains) is done by
//! an actor of the same container before the probes are loaded: it is not
//! what is decided.

use crate::bundle::{Actor, AgentOp, Container, ContainerSpec, LinkVia, Outcome};
use d4c_artifact::eval::Tables;
use d4c_artifact::event::{Container as Meta, Event, FileEvent, ProcessEvent, Volume};
use d4c_artifact::ops::{Actions, Kind, Operation};
use d4c_kernel_probes::abi;
use d4c_kernel_probes::probes::{Record, Settings};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The scenario file whose policy and container metadata the cases use.
const SCENARIO: &str = "/testdata/scenarios/evasion.d4ct";
/// The policy that scenario must name.
const POLICY: &str = "evasion-guard.yaml";
/// Where the bundle goes (a tmpfs in the guest).
const WORKDIR: &str = "/tmp/d4c-evasion";
/// The actor every case runs as (staging creates it).
const ACTOR: &str = "/usr/local/bin/evader";
/// The depth of the two directory chains under `/tmp/long` and
/// `/tmp/deep`: deeper than 100 components, far within the walk's budget
/// of `PATH_MAX / 2 + 64` iterations.
const CHAIN_DEPTH: usize = 120;
/// The bytes of each name in `/tmp/long`: 120 of them make a path of
/// 4,930 bytes, longer than PATH_MAX.
const LONG_NAME_BYTES: usize = 40;
/// The directory of the 4,096-byte edge: `/tmp/edge/d/d/.../ab` is exactly
/// PATH_MAX bytes, `.../abc` one more.
const EDGE_DIR: &str = "/tmp/edge";

/// Where the decision record's path must be.
#[derive(Debug, Clone)]
enum WantPath {
    /// Exactly this path.
    Is(String),
    /// A path that starts so: a file with no name (`#<inode>`).
    StartsWith(String),
}

/// A decision record a case must produce.
#[derive(Debug, Clone)]
struct Want {
    operation: Operation,
    path: WantPath,
    volume: Volume,
    /// The path was not resolved whole (fail closed).
    truncated: bool,
    /// The event is on a directory (for everything in it).
    directory: bool,
}

/// One way around drift prevention.
struct Case {
    name: String,
    ops: Vec<AgentOp>,
    /// `Some((op, records))`: refused with EPERM at that op (by index), with
    /// exactly those decision records, in order; `None`: every op
    /// succeeds, with none.
    refused: Option<(u32, Vec<Want>)>,
    /// `Some((op, errno))`: the kernel fails that op with that errno before
    /// any hook decides (no record), whatever the policy: what this kernel
    /// cannot do at all. Overrides `refused`.
    unsupported: Option<(u32, i32)>,
    /// A container path the guest checks afterwards, and whether it must
    /// exist.
    effect: Option<(String, bool)>,
}

impl Case {
    /// Refused with EPERM at op `failing`, decided as `want`.
    fn refused(name: &str, ops: Vec<AgentOp>, failing: u32, want: Want) -> Case {
        Case::refused_all(name, ops, failing, vec![want])
    }

    /// Refused with EPERM at op `failing`, with the records `wants`.
    fn refused_all(name: &str, ops: Vec<AgentOp>, failing: u32, wants: Vec<Want>) -> Case {
        Case { name: name.into(), ops, refused: Some((failing, wants)), unsupported: None, effect: None }
    }

    /// Allowed, with no record.
    fn allowed(name: &str, ops: Vec<AgentOp>) -> Case {
        Case { name: name.into(), ops, refused: None, unsupported: None, effect: None }
    }

    /// When `errno` says so, failed by the kernel at op `failing` with
    /// `errno`, before any hook.
    fn unless(self, errno: Option<i32>, failing: u32) -> Case {
        Case { unsupported: errno.map(|e| (failing, e)), ..self }
    }

    /// With container path `path` existing afterwards or not.
    fn leaving(self, path: &str, exists: bool) -> Case {
        Case { effect: Some((path.into(), exists)), ..self }
    }
}

/// A file event record of `operation` at `path`, on the root file system.
fn at(operation: Operation, path: &str) -> Want {
    Want { operation, path: WantPath::Is(path.into()), volume: Volume::RootFs, truncated: false, directory: false }
}

/// A directory's event record of `operation` at `path` (for everything in
/// it), on the root file system.
fn dir_at(operation: Operation, path: &str) -> Want {
    Want { directory: true, ..at(operation, path) }
}

/// A file event record of `operation` on a file with no name in `dir`
/// (its path is `dir` + `#<inode>`), on the root file system.
fn unnamed(operation: Operation, dir: &str) -> Want {
    Want {
        operation,
        path: WantPath::StartsWith(dir.into()),
        volume: Volume::RootFs,
        truncated: false,
        directory: false,
    }
}

/// `open(path, O_CREAT|O_EXCL, mode)`.
fn create(path: &str, mode: u32) -> AgentOp {
    AgentOp::Create { path: path.into(), mode }
}

/// The components of the two chains and the edge, by directory.
fn chain(dir: &str) -> Vec<String> {
    match dir {
        "/tmp/long" => (0..CHAIN_DEPTH).map(|i| format!("{i:03}-{}", "n".repeat(LONG_NAME_BYTES - 4))).collect(),
        "/tmp/deep" => vec!["d".to_string(); CHAIN_DEPTH],
        // `/tmp/edge` (9 bytes) + 2 per level + `/ab` (3) = PATH_MAX.
        _ => vec!["d".to_string(); (abi::PATH_MAX - EDGE_DIR.len() - 3) / 2],
    }
}

/// The container path of `name` at the bottom of `dir`'s chain (may be
/// longer than PATH_MAX: only for comparisons).
fn bottom(dir: &str, name: &str) -> String {
    let mut path = dir.to_string();
    for c in chain(dir) {
        path.push('/');
        path.push_str(&c);
    }
    format!("{path}/{name}")
}

/// What the probes' walk writes of `path` when it is longer than PATH_MAX:
/// whole components from the file upwards, while they fit in PATH_MAX.
fn walked_part(path: &str) -> String {
    let mut used = 0;
    let mut kept = Vec::new();
    for c in path.rsplit('/').filter(|c| !c.is_empty()) {
        if used + c.len() + 1 > abi::PATH_MAX {
            break;
        }
        used += c.len() + 1;
        kept.push(c);
    }
    kept.iter().rev().map(|c| format!("/{c}")).collect()
}

/// `chdir` to the bottom of `dir`'s chain, one level at a time (an absolute
/// path that long cannot be passed).
fn descend(dir: &str) -> Vec<AgentOp> {
    std::iter::once(AgentOp::Chdir(dir.into())).chain(chain(dir).into_iter().map(AgentOp::Chdir)).collect()
}

/// What is done before the probes load.
fn setup() -> Vec<AgentOp> {
    let mut ops = vec![
        AgentOp::Symlink { target: "/usr/bin".into(), link: "/tmp/l".into() },
        AgentOp::Mkdir { path: "/mnt".into(), mode: 0o755 },
        AgentOp::Mkdir { path: "/mnt/bin".into(), mode: 0o755 },
        AgentOp::BindMount { from: "/usr/bin".into(), to: "/mnt/bin".into() },
        // Directories of tools to move, a plain file, a directory to mount.
        AgentOp::Mkdir { path: "/tmp/kit".into(), mode: 0o755 },
        create("/tmp/kit/evil", 0o755),
        AgentOp::Mkdir { path: "/tmp/kit2".into(), mode: 0o755 },
        create("/tmp/kit2/evil", 0o755),
        create("/tmp/plain", 0o644),
        create("/tmp/acl", 0o644),
        AgentOp::Mkdir { path: "/kits".into(), mode: 0o755 },
        AgentOp::Mkdir { path: "/kits/tools".into(), mode: 0o755 },
        create("/kits/tools/evil", 0o755),
    ];
    for dir in ["/tmp/long", "/tmp/deep", EDGE_DIR] {
        ops.push(AgentOp::Mkdir { path: dir.into(), mode: 0o755 });
        ops.push(AgentOp::Chdir(dir.into()));
        for name in chain(dir) {
            ops.push(AgentOp::Mkdir { path: name.clone(), mode: 0o755 });
            ops.push(AgentOp::Chdir(name));
        }
    }
    ops
}

/// The cases, in the order of docs/kernel-probes.md's evasion table.
/// `no_rootfs_tmpfile`: the errno `open(O_TMPFILE)` fails with on the root
/// file system (overlayfs before Linux 6.6 has no `O_TMPFILE`:
/// `EOPNOTSUPP`), or `None`.
fn cases(no_rootfs_tmpfile: Option<i32>) -> Vec<Case> {
    use LinkVia::{EmptyPath, ProcFd};
    use Operation::{CreateExecutable, CreateFile, DeleteFile, ModifyExecutable, ModifyFile};
    let mut cases = Vec::new();
    // 1-3. A second spelling of /usr/bin/NAME: a symlink to /usr/bin,
    // `..`, /proc/self/root (the container mounts /proc). The path is the
    // file's.
    for (spelling, dir, name) in [
        ("symlink", "/tmp/l", "dropper"),
        ("dotdot", "/tmp/../usr/bin", "x"),
        ("proc-self-root", "/proc/self/root/usr/bin", "y"),
    ] {
        for (kind, file, mode, operation) in [
            ("executable", name.to_string(), 0o755, CreateExecutable),
            ("file", format!("{name}.txt"), 0o644, CreateFile),
        ] {
            let real = format!("/usr/bin/{file}");
            let ops = vec![create(&format!("{dir}/{file}"), mode)];
            cases
                .push(Case::refused(&format!("{spelling}-{kind}"), ops, 0, at(operation, &real)).leaving(&real, false));
        }
    }
    // 4. A bind mount of /usr/bin at /mnt/bin, made by the container (it
    // has CAP_SYS_ADMIN): the path is the bound place's, on a volume. An
    // executable is still refused (executableDrift names no path); a plain
    // file is not, as binChanges names /usr/bin/** and the file's path is
    // /mnt/bin/...: the documented limit, asserted as it is.
    let bound = Want { volume: Volume::Volume, ..at(CreateExecutable, "/mnt/bin/w") };
    cases.push(
        Case::refused("bind-mount-executable", vec![create("/mnt/bin/w", 0o755)], 0, bound)
            .leaving("/usr/bin/w", false),
    );
    cases.push(Case::allowed("bind-mount-file", vec![create("/mnt/bin/w.txt", 0o644)]).leaving("/usr/bin/w.txt", true));
    cases.push(Case::allowed("bind-mount-write", vec![AgentOp::Write("/mnt/bin/notes.txt".into())]));
    let direct = at(ModifyFile, "/usr/bin/notes.txt");
    cases.push(Case::refused("direct-write", vec![AgentOp::Write("/usr/bin/notes.txt".into())], 0, direct));
    // 5. A file with no name (`O_TMPFILE`): made executable, created
    // executable, or given a name in /usr/bin. Until it has a name, its
    // path is the one the kernel gives it, `#<inode>`, in its directory.
    let tmpfile = |dir: &str, mode| AgentOp::OpenTmpfile { dir: dir.into(), mode };
    let link = |to: &str, via| AgentOp::LinkOpen { to: to.into(), via };
    // On a kernel whose overlayfs has no O_TMPFILE, the root file system's
    // cases fail at the open, undecided; the same on a tmpfs (/dev/shm, a
    // volume) is decided on every kernel.
    let ops = vec![tmpfile("/tmp", 0o600), AgentOp::ChmodOpen(0o755), link("/usr/bin/z", EmptyPath)];
    let unnamed_executable = unnamed(CreateExecutable, "/tmp/#");
    cases.push(
        Case::refused("tmpfile-chmod-linkat", ops, 1, unnamed_executable.clone())
            .leaving("/usr/bin/z", false)
            .unless(no_rootfs_tmpfile, 0),
    );
    let ops = vec![tmpfile("/tmp", 0o755), link("/usr/bin/z", EmptyPath)];
    cases.push(
        Case::refused("tmpfile-executable", ops, 0, unnamed_executable)
            .leaving("/usr/bin/z", false)
            .unless(no_rootfs_tmpfile, 0),
    );
    for (name, to, via) in
        [("tmpfile-linkat-empty-path", "/usr/bin/z2", EmptyPath), ("tmpfile-linkat-proc-fd", "/usr/bin/z3", ProcFd)]
    {
        let ops = vec![tmpfile("/tmp", 0o644), link(to, via)];
        cases.push(Case::refused(name, ops, 1, at(CreateFile, to)).leaving(to, false).unless(no_rootfs_tmpfile, 0));
    }
    let ops = vec![tmpfile("/usr/bin", 0o644)];
    cases.push(
        Case::refused("tmpfile-in-protected-dir", ops, 0, unnamed(CreateFile, "/usr/bin/#"))
            .unless(no_rootfs_tmpfile, 0),
    );
    let on_shm = |operation| Want { volume: Volume::Volume, ..unnamed(operation, "/dev/shm/#") };
    let ops = vec![tmpfile("/dev/shm", 0o600), AgentOp::ChmodOpen(0o755)];
    cases.push(Case::refused("tmpfile-chmod-on-tmpfs", ops, 1, on_shm(CreateExecutable)));
    // 6. Longer than PATH_MAX: fail closed, flagged, even for a file no
    // selector names. Deep but short: resolved whole. The edge: exactly
    // PATH_MAX bytes is whole, one more is not.
    let deep = |dir: &str, name: &str, mode| [descend(dir), vec![create(name, mode)]].concat();
    let last = |dir: &str| u32::try_from(chain(dir).len() + 1).unwrap_or(u32::MAX);
    let cut =
        |operation, dir: &str, name: &str| Want { truncated: true, ..at(operation, &walked_part(&bottom(dir, name))) };
    for (name, file, mode, operation) in
        [("long-path-executable", "x", 0o755, CreateExecutable), ("long-path-file", "y", 0o644, CreateFile)]
    {
        cases.push(Case::refused(
            name,
            deep("/tmp/long", file, mode),
            last("/tmp/long"),
            cut(operation, "/tmp/long", file),
        ));
    }
    let whole = at(CreateExecutable, &bottom("/tmp/deep", "x"));
    cases.push(Case::refused("deep-path-executable", deep("/tmp/deep", "x", 0o755), last("/tmp/deep"), whole));
    cases.push(Case::allowed("deep-path-file", deep("/tmp/deep", "y", 0o644)));
    cases.push(Case::allowed("path-max-file", deep(EDGE_DIR, "ab", 0o644)));
    let over = cut(CreateFile, EDGE_DIR, "abc");
    cases.push(Case::refused("path-max-plus-one-file", deep(EDGE_DIR, "abc", 0o644), last(EDGE_DIR), over));
    // 7. Overlayfs (issue 11): the real file overlayfs opens behind a
    // write-open, and copy-up's files, are not the task's operations. On
    // 6.12 they were decided on a path outside the container and failed
    // closed: an ordinary file could not be made under a policy that
    // blocks executable changes. Allowed, with no record.
    cases.push(Case::allowed("regression-overlayfs-backing-file-create", vec![create("/tmp/plain.txt", 0o644)]));
    cases.push(Case::allowed(
        "regression-overlayfs-copy-up-write",
        vec![AgentOp::Write("/etc/app.conf".into()), AgentOp::Truncate("/etc/app.conf".into())],
    ));
    // 8. New names without a new file (issue 11). A directory moved into
    // /usr/bin brings what is in it: its createFile is binChanges' (the
    // path-less executableDrift does not decide directories: what they
    // hold was decided when it was made). Moved elsewhere: allowed.
    let rename = |from: &str, to: &str| AgentOp::Rename { from: from.into(), to: to.into() };
    cases.push(
        Case::refused(
            "dir-rename-into-protected",
            vec![rename("/tmp/kit", "/usr/bin/kit")],
            0,
            dir_at(CreateFile, "/usr/bin/kit"),
        )
        .leaving("/usr/bin/kit/evil", false),
    );
    cases.push(
        Case::allowed("dir-rename-elsewhere", vec![rename("/tmp/kit2", "/kits/kit2")]).leaving("/kits/kit2/evil", true),
    );
    // /usr/bin moved away takes its files: a deletion of everything in it.
    cases.push(
        Case::refused(
            "dir-rename-protected-away",
            vec![rename("/usr/bin", "/tmp/oldbin")],
            0,
            dir_at(DeleteFile, "/usr/bin"),
        )
        .leaving("/usr/bin/tool", true),
    );
    // An exchange replaces /usr/bin/tool's executable: both names modified.
    let exchange = AgentOp::Exchange { a: "/usr/bin/tool".into(), b: "/tmp/plain".into() };
    let modified = vec![at(ModifyExecutable, "/usr/bin/tool"), at(ModifyExecutable, "/tmp/plain")];
    cases.push(Case::refused_all("exchange-into-protected", vec![exchange], 0, modified));
    // An access ACL that gives an execute bit makes an executable, as a
    // chmod does (inode_set_acl from Linux 6.2, inode_setxattr before).
    let acl = AgentOp::Setfacl { path: "/tmp/acl".into(), mode: 0o755 };
    cases.push(Case::refused("acl-makes-executable", vec![acl], 0, at(CreateExecutable, "/tmp/acl")));
    // A symbolic link is an executable name.
    let symlink = |target: &str, link: &str| AgentOp::Symlink { target: target.into(), link: link.into() };
    cases.push(
        Case::refused(
            "symlink-into-protected",
            vec![symlink("/tmp/plain", "/usr/bin/plain")],
            0,
            at(CreateExecutable, "/usr/bin/plain"),
        )
        .leaving("/usr/bin/plain", false),
    );
    // A mount brings a directory's worth of names and covers what was
    // there (the container has CAP_SYS_ADMIN). mkdir is not decided.
    let mkdir = |path: &str| AgentOp::Mkdir { path: path.into(), mode: 0o755 };
    let bind = |from: &str, to: &str| AgentOp::BindMount { from: from.into(), to: to.into() };
    let mounted = vec![dir_at(DeleteFile, "/usr/bin/mnt"), dir_at(CreateFile, "/usr/bin/mnt")];
    cases.push(
        Case::refused_all(
            "bind-mount-onto-protected",
            vec![mkdir("/usr/bin/mnt"), bind("/kits/tools", "/usr/bin/mnt")],
            1,
            mounted,
        )
        .leaving("/usr/bin/mnt/evil", false),
    );
    cases.push(
        Case::allowed("bind-mount-elsewhere", vec![mkdir("/tmp/m"), bind("/kits/tools", "/tmp/m")])
            .leaving("/tmp/m/evil", true),
    );
    cases
}

/// Runs every case. `Ok(summary)` when all passed; `Err` names the failed
/// cases (their lines say why) or what could not be set up.
pub fn run() -> Result<String, String> {
    let started = Instant::now();
    let prepared = d4cc::scenario::prepare(Path::new(SCENARIO))?;
    let policy = prepared.file.policy.as_ref().map(|p| p.value.clone()).unwrap_or_default();
    if !policy.ends_with(POLICY) {
        return Err(format!("{SCENARIO} names the policy `{policy}`, not `{POLICY}`"));
    }
    let meta = prepared.containers.get("app").cloned().ok_or_else(|| format!("{SCENARIO} has no container `app`"))?;
    let workdir = PathBuf::from(WORKDIR);
    std::fs::create_dir_all(&workdir).map_err(|e| format!("cannot create `{}`: {e}", workdir.display()))?;
    let spec = ContainerSpec {
        name: "app".into(),
        pod_uid: "e7a50000-0000-4000-8000-0000000e7a50".into(),
        image: Some("ghcr.io/acme/app:2.0".into()),
        namespace: Some("prod".into()),
        pod: Some("evasion".into()),
        files: vec![
            ("/usr/bin/tool".into(), 0o755),
            ("/usr/bin/notes.txt".into(), 0o644),
            // In the image's layer: writing it copies it up.
            ("/etc/app.conf".into(), 0o644),
        ],
        // The bind mount of a case needs CAP_SYS_ADMIN.
        privileged: true,
        ..ContainerSpec::default()
    };
    let mut container = Container::start(&spec, &workdir)?;
    let result = perform_cases(&mut container, &prepared.tables, &meta);
    // The teardown's `remove_dir_all` keeps a descriptor open per level:
    // the edge's chain goes first, level by level.
    let cleaned = remove_chain(&container, EDGE_DIR);
    let stopped = container.stop();
    let _ = std::fs::remove_dir_all(&workdir);
    let (cases, failed, truncated) = result?;
    cleaned?;
    stopped?;
    if failed.is_empty() {
        Ok(format!("cases={cases} truncated={truncated} seconds={:.1}", started.elapsed().as_secs_f64()))
    } else {
        Err(format!("{} of {cases} cases failed: {}", failed.len(), failed.join(", ")))
    }
}

/// Sets the container up, stages an actor per case, loads the probes and
/// performs the cases, printing a line each. Returns the number of cases,
/// the failed ones, and the probes' count of truncated paths.
fn perform_cases(container: &mut Container, tables: &Tables, meta: &Meta) -> Result<(usize, Vec<String>, u64), String> {
    let actor = Actor { exe: ACTOR.into(), name: None, interactive: false, uid: 0 };
    let setup_actor = container.stage(&actor)?;
    let done = container.perform(setup_actor, &AgentOp::Sequence(setup()))?;
    if done.errno != 0 {
        return Err(format!("the set-up failed: {}", done.detail));
    }
    // Whether this kernel's overlayfs makes O_TMPFILE files (Linux 6.6).
    let probe_actor = container.stage(&actor)?;
    let probe = container.perform(probe_actor, &AgentOp::OpenTmpfile { dir: "/tmp".into(), mode: 0o600 })?;
    let no_rootfs_tmpfile = match probe.errno {
        0 => None,
        libc::EOPNOTSUPP => {
            println!(
                "D4C-VMTEST-NOTE: evasion: O_TMPFILE is not supported on this kernel's overlayfs root (EOPNOTSUPP)"
            );
            Some(libc::EOPNOTSUPP)
        }
        errno => return Err(format!("O_TMPFILE in /tmp failed with errno {errno}: {}", probe.detail)),
    };
    let cases = cases(no_rootfs_tmpfile);
    let mut staged = Vec::new();
    for _ in &cases {
        let id = container.stage(&actor)?;
        staged.push((id, container.staged_pid(id)?));
    }

    let mut probes = crate::guest::attach_probes(tables, Settings::default(), container, meta)?;

    let mut failed = Vec::new();
    for (case, (id, pid)) in cases.iter().zip(staged) {
        let op = AgentOp::Sequence(case.ops.clone());
        let start = Instant::now();
        let outcome = container.perform(id, &op)?;
        let ms = start.elapsed().as_millis();
        let records = crate::guest::decisions_of(&mut probes, pid)?;
        let mut problems = check(case, &outcome, &records, tables, meta);
        if let Some((path, exists)) = &case.effect {
            if container.host_path(path)?.exists() != *exists {
                problems.push(format!("`{path}` {}", if *exists { "is missing" } else { "was created" }));
            }
        }
        println!(
            "D4C-VMTEST-EVASION-CASE: {} {} errno={} completed={}/{} ms={ms} records=[{}]{}",
            if problems.is_empty() { "ok" } else { "FAIL" },
            case.name,
            outcome.errno,
            outcome.completed,
            case.ops.len(),
            records.iter().map(describe).collect::<Vec<_>>().join(" "),
            if problems.is_empty() {
                String::new()
            } else {
                format!(" problems: {} ({})", problems.join("; "), outcome.detail)
            }
        );
        if !problems.is_empty() {
            failed.push(case.name.clone());
        }
    }
    let counters = probes.counters().map_err(|e| e.to_string())?;
    let truncated = counters.get(abi::COUNT_TRUNCATED as usize).copied().unwrap_or_default();
    // Overlayfs opened files on the cases' behalf (the real file behind
    // every write-open, copy-up's files), and the probes skipped them.
    let internal = counters.get(abi::COUNT_INTERNAL as usize).copied().unwrap_or_default();
    println!("D4C-VMTEST-EVASION-CASE: internal opens skipped: {internal}");
    if internal == 0 {
        failed.push("overlayfs-internal-opens-counted".into());
    }
    Ok((cases.len(), failed, truncated))
}

/// Removes the chain under container directory `dir` from the guest side
/// without a descriptor per level: down through the working directory,
/// then up, removing each level (and the files at the bottom).
fn remove_chain(container: &Container, dir: &str) -> Result<(), String> {
    let top = container.host_path(dir)?;
    let names = chain(dir);
    let fail = |what: &str, e: std::io::Error| format!("removing the chain under `{}`: {what}: {e}", top.display());
    if !top.exists() {
        return Ok(());
    }
    std::env::set_current_dir(&top).map_err(|e| fail("chdir", e))?;
    let result = (|| {
        let mut depth = 0;
        for name in &names {
            if std::env::set_current_dir(name).is_err() {
                break;
            }
            depth += 1;
        }
        for entry in std::fs::read_dir(".").map_err(|e| fail("listing the bottom", e))? {
            let entry = entry.map_err(|e| fail("listing the bottom", e))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_file(entry.file_name()).map_err(|e| fail("unlink", e))?;
            }
        }
        for name in names.iter().take(depth).rev() {
            std::env::set_current_dir("..").map_err(|e| fail("chdir ..", e))?;
            std::fs::remove_dir(name).map_err(|e| fail("rmdir", e))?;
        }
        Ok(())
    })();
    std::env::set_current_dir("/").map_err(|e| fail("chdir /", e))?;
    result
}

/// What is wrong with a case's outcome and records (empty: it passed).
fn check(case: &Case, outcome: &Outcome, records: &[Record], tables: &Tables, meta: &Meta) -> Vec<String> {
    let mut problems = Vec::new();
    let calls = u32::try_from(case.ops.len()).unwrap_or(u32::MAX);
    if let Some((failing, errno)) = case.unsupported {
        if outcome.errno != errno || outcome.completed != failing {
            problems.push(format!("expected errno {errno} at op {} (unsupported here)", failing + 1));
        }
        if !records.is_empty() {
            problems.push(format!("expected no decision record, got {}", records.len()));
        }
        return problems;
    }
    match &case.refused {
        Some((failing, _)) if outcome.errno != libc::EPERM || outcome.completed != *failing => {
            problems.push(format!("expected EPERM at op {}", failing + 1));
        }
        None if outcome.errno != 0 || outcome.completed != calls => {
            problems.push(format!("expected every op to succeed, op {} failed", outcome.completed + 1));
        }
        _ => {}
    }
    let wanted: Vec<&Want> = case.refused.iter().flat_map(|(_, wants)| wants).collect();
    if records.len() != wanted.len() {
        problems.push(format!("expected {} decision records, got {}", wanted.len(), records.len()));
    }
    for (want, record) in wanted.into_iter().zip(records) {
        problems.extend(check_record(want, record, tables, meta));
    }
    let blocked = records.iter().any(|r| Actions::from_bits(action_bits(r)).contains(Actions::BLOCK));
    if blocked != (outcome.errno == libc::EPERM) {
        problems.push(format!("a record blocks: {blocked}, but the errno is {}", outcome.errno));
    }
    problems
}

fn action_bits(record: &Record) -> u8 {
    u8::try_from(record.head.actions).unwrap_or(u8::MAX)
}

/// What is wrong with one record.
fn check_record(want: &Want, record: &Record, tables: &Tables, meta: &Meta) -> Vec<String> {
    let mut problems = Vec::new();
    let h = &record.head;
    let kind = want.operation.kind();
    if Some(h.kind) != d4c_kernel_probes::maps::kind_code(kind) || h.op as usize != want.operation.table_index() {
        problems.push(format!("expected a `{}` record", want.operation.name()));
    }
    let path = record.path_text();
    let path_ok = match &want.path {
        WantPath::Is(p) => path == *p,
        WantPath::StartsWith(p) => path.starts_with(p.as_str()),
    };
    if !path_ok {
        let wanted = match &want.path {
            WantPath::Is(p) => format!("`{}`", shorten(p)),
            WantPath::StartsWith(p) => format!("one starting `{p}`"),
        };
        problems.push(format!("expected the path {wanted}, got `{}`", shorten(&path)));
    }
    let volume = Volume::ALL.iter().position(|v| *v == want.volume).unwrap_or_default();
    if kind == Kind::File && h.volume as usize != volume {
        problems.push(format!("expected the volume {:?}, got {}", want.volume, h.volume));
    }
    let directory = h.flags & abi::EV_DIRECTORY != 0;
    if directory != want.directory {
        problems.push(format!("expected directory={}, got {directory}", want.directory));
    }
    if h.flags & abi::EV_OUTSIDE != 0 {
        problems.push("the path is outside the container's root".into());
    }
    let truncated = h.flags & abi::EV_TRUNCATED != 0;
    if truncated != want.truncated {
        problems.push(format!("expected truncated={}, got {truncated}", want.truncated));
    }
    if want.truncated {
        if (h.path_len as usize) <= abi::PATH_MAX {
            problems.push(format!("a truncated record with path_len {}", h.path_len));
        }
        if !Actions::from_bits(action_bits(record)).contains(Actions::BLOCK) {
            problems.push("a truncated path in a row that blocks was not blocked (fail closed)".into());
        }
    } else {
        // The table evaluator on the kernel's event decides alike.
        let event = match kind {
            Kind::Network => {
                problems.push("a network record, which the kernel does not make yet".into());
                return problems;
            }
            Kind::File => Event::File(FileEvent {
                operation: want.operation,
                path: Some(path),
                volume: want.volume,
                directory: want.directory,
            }),
            Kind::Process => Event::Process(ProcessEvent {
                operation: want.operation,
                executable: path,
                name: record.name_text(),
                interactive: h.flags & abi::EV_INTERACTIVE != 0,
                // The evasion actors run as root, whom every image names.
                user: d4c_artifact::event::User { id: h.euid, name: (h.euid == 0).then(|| "root".to_string()) },
            }),
        };
        let table = tables.decide(meta, &event).actions;
        if table.bits() != action_bits(record) {
            problems.push(format!(
                "the kernel's actions {} differ from the table evaluator's {}",
                h.actions,
                table.bits()
            ));
        }
    }
    problems
}

/// A record on one line: operation, path (long ones by their ends),
/// volume, flags, actions.
fn describe(record: &Record) -> String {
    let h = &record.head;
    let kind = if h.kind == abi::KIND_FILE { Kind::File } else { Kind::Process };
    let op = Operation::of_kind(kind).get(h.op as usize).map_or("?", |o| o.name());
    format!(
        "{{{op} `{}` path_len={} volume={} flags={:#x}{}{} actions={}}}",
        shorten(&record.path_text()),
        h.path_len,
        h.volume,
        h.flags,
        if h.flags & abi::EV_TRUNCATED != 0 { " truncated" } else { "" },
        if h.flags & abi::EV_DIRECTORY != 0 { " directory" } else { "" },
        Actions::from_bits(action_bits(record)).names().join(",")
    )
}

/// `text`, or its first and last 60 characters when it is longer.
fn shorten(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 140 {
        return text.to_string();
    }
    let head: String = chars.iter().take(60).collect();
    let tail: String = chars.iter().skip(chars.len() - 60).collect();
    format!("{head}...({} bytes)...{tail}", text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_is_exactly_path_max() {
        assert_eq!(bottom(EDGE_DIR, "ab").len(), abi::PATH_MAX);
        assert_eq!(bottom(EDGE_DIR, "abc").len(), abi::PATH_MAX + 1);
        assert!(bottom("/tmp/long", "x").len() > abi::PATH_MAX);
        assert!(bottom("/tmp/deep", "x").len() < abi::PATH_MAX);
    }

    #[test]
    fn the_walked_part_is_whole_components_that_fit() {
        let long = walked_part(&bottom("/tmp/long", "x"));
        assert!(long.len() <= abi::PATH_MAX && long.len() + LONG_NAME_BYTES + 1 > abi::PATH_MAX);
        assert!(long.ends_with("/x") && long.starts_with('/'));
        // The edge plus one: everything but `/tmp`.
        let edge = walked_part(&bottom(EDGE_DIR, "abc"));
        assert_eq!(edge, bottom(EDGE_DIR, "abc").trim_start_matches("/tmp"));
        assert_eq!(walked_part("/usr/bin/x"), "/usr/bin/x");
    }

    #[test]
    fn every_case_sequence_fits_one_protocol_line() {
        let line = crate::protocol::encode_op(&AgentOp::Sequence(setup()));
        assert!(line.len() < crate::protocol::MAX_LINE, "{}", line.len());
        for case in cases(None).into_iter().chain(cases(Some(libc::EOPNOTSUPP))) {
            let line = crate::protocol::encode_op(&AgentOp::Sequence(case.ops.clone()));
            assert!(line.len() < crate::protocol::MAX_LINE, "{}: {}", case.name, line.len());
            assert!(case.refused.iter().all(|(failing, _)| (*failing as usize) < case.ops.len()), "{}", case.name);
        }
    }
}
