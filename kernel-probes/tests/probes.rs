//! The probes object on this machine's kernel, which refuses LSM programs
//! (kernel-lab.md): the tracepoints load, verify and attach here, and they
//! report a registered container's lifecycle through the ring buffer. The
//! LSM hooks are verified and run in the VM suite (`scripts/vmtest`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use d4c_artifact::eval::Tables;
use d4c_artifact::event::Container;
use d4c_artifact::Artifact;
use d4c_kernel_probes::abi;
use d4c_kernel_probes::probes::{Probes, Settings};
use d4cc::compile::{compile, CompileOptions};

/// The cgroup id of a cgroup directory: its inode number, the kernfs node
/// id on 64-bit kernels since 5.5. Taken here rather than from
/// `d4c_runtime::cgroup::cgroup_id`, which reads it the same way, so that
/// the probes' tests do not depend on the daemon.
fn cgroup_id(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).unwrap().ino()
}

fn tables() -> d4c_artifact::eval::Tables {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/policies/default.yaml");
    tables_of(path, &std::fs::read(path).unwrap())
}

fn tables_of(path: &str, bytes: &[u8]) -> d4c_artifact::eval::Tables {
    let bytes = bytes.to_vec();
    let (_, lint) = d4cc::lint::lint_bytes(path.to_string(), bytes.clone());
    let options = CompileOptions { policy_name: "default".into(), ..Default::default() };
    let artifact = compile(&bytes, lint.checked.as_ref().unwrap(), &options).unwrap();
    let aligned = d4c_artifact::aligned_copy(&artifact);
    Tables::read(&Artifact::parse(&aligned).unwrap()).unwrap()
}

#[test]
fn tracepoints_verify_attach_and_report_a_containers_lifecycle() {
    let settings = Settings { lsm: false, enforce: false, ..Settings::default() };
    let mut probes = Probes::load(tables(), settings).unwrap();
    for stats in probes.stats() {
        println!("{}: verifier processed {:?} instructions", stats.name, stats.verified_instructions);
    }
    probes.attach().unwrap();
    // This test's own cgroup stands in for a container's.
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 host").to_string();
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let id = cgroup_id(&dir);
    let row = probes.add_container(id, &Container::default(), &[]).unwrap();
    let child = std::process::Command::new("/bin/true").args(["first arg", "", "x"]).status().unwrap();
    assert!(child.success());
    // Drained twice: a second drain must see only what came after the
    // first (regression: a ring buffer reader made per drain looped).
    let mut records = probes.drain().unwrap();
    let second = std::process::Command::new("/bin/true").status().unwrap();
    assert!(second.success());
    // setsid(1) forks when it leads a process group, then calls setsid().
    let session = std::process::Command::new("setsid").args(["--wait", "/bin/true"]).status().unwrap();
    assert!(session.success());
    probes.remove_cgroup(id).unwrap();
    let later = probes.drain().unwrap();
    // The executable as the task sees it, resolved from the file (through
    // the /bin symlink of a merged-/usr system): what /proc/PID/exe says.
    let true_exe = std::fs::canonicalize("/bin/true").unwrap().to_string_lossy().into_owned();
    let is_true = |r: &&d4c_kernel_probes::probes::Record| {
        r.head.record == abi::RECORD_LIFECYCLE && r.head.op == abi::LIFE_EXEC && r.path_text() == true_exe
    };
    assert!(later.iter().any(|r| is_true(&r)), "{later:#?}");
    records.extend(later);
    let ours: Vec<_> = records.iter().filter(|r| r.head.cgroup_id == id).collect();
    let exec =
        ours.iter().copied().find(is_true).unwrap_or_else(|| panic!("no exec record of /bin/true in {records:#?}"));
    assert_eq!(exec.name_text(), "true");
    assert_eq!(exec.head.flags & abi::EV_TRUNCATED, 0, "resolved whole");
    assert_eq!(exec.head.path_len as usize, true_exe.len());
    assert_eq!(exec.head.mode & 0o170000, 0o100000, "a regular file's mode: {:o}", exec.head.mode);
    // The arguments, copied in the kernel: empty and spaced ones kept.
    let args = ours.iter().copied().filter(is_true).filter_map(|r| r.args_text()).collect::<Vec<_>>();
    assert!(args.contains(&vec!["/bin/true".to_string(), "first arg".into(), "".into(), "x".into()]), "{args:?}");
    assert_eq!(exec.head.row, row);
    assert!(ours.iter().any(|r| r.head.op == abi::LIFE_FORK && r.head.tgid == std::process::id()), "no fork record");
    assert!(ours.iter().any(|r| r.head.op == abi::LIFE_EXIT), "no exit record");
    assert!(ours.iter().any(|r| r.head.op == abi::LIFE_SETSID), "no setsid record");
    // Every record names the tracepoint that wrote it.
    for r in &ours {
        let expected = match r.head.op {
            abi::LIFE_FORK => "tracepoint__sched_process_fork",
            abi::LIFE_EXEC => "tracepoint__sched_process_exec",
            abi::LIFE_EXIT => "tracepoint__sched_process_exit",
            abi::LIFE_SETSID => "tracepoint__syscalls_sys_exit_setsid",
            op => panic!("a lifecycle record of op {op}: {r:#?}"),
        };
        assert_eq!(r.hook_point(), Some(expected), "{r:#?}");
        // The effective uid as the task's user namespace sees it.
        assert_eq!(r.head.euid, geteuid(), "{r:#?}");
        assert_eq!(r.head.args_len as usize, r.args.len());
    }
    let counters = probes.counters().unwrap();
    assert_eq!(counters[abi::COUNT_DROPPED as usize], 0);
    assert!(counters[abi::COUNT_EVENTS as usize] >= 3, "{counters:?}");
}

/// User rows: a task acting as a user whom a condition names (here by id,
/// this test's own euid) is in the row of its container and user; any
/// other uid stays in the container's row. The tracepoints find the row
/// as the LSM hooks do (`d4c_container_of`).
#[test]
fn a_named_users_tasks_are_in_their_user_row() {
    let euid = geteuid();
    let other = if euid == 65534 { 65533 } else { 65534 };
    let policy = format!(
        "process:\n  selectors:\n    - name: me\n      processUserId: [{euid}]\n  responses:\n    - match: [me]\n      actions: [log]\n"
    );
    let tables = tables_of("users.yaml", policy.as_bytes());
    assert!(tables.has_user_conditions());
    let users = tables.named_users([]);
    assert_eq!(users.iter().map(|u| u.id).collect::<Vec<_>>(), vec![euid]);
    let settings = Settings { lsm: false, enforce: false, ..Settings::default() };
    let mut probes = Probes::load(tables, settings).unwrap();
    probes.attach().unwrap();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 host").to_string();
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let id = cgroup_id(&dir);
    let row = probes.add_container(id, &Container::default(), &users).unwrap();
    let process =
        |probes: &Probes, row: u32| probes.row_verdicts(row, d4c_artifact::ops::Kind::Process).map(<[bool]>::to_vec);
    assert_eq!(process(&probes, row), Some(vec![false]), "the container's row: no condition names other users");
    let mine = std::process::Command::new("/bin/true").status().unwrap();
    assert!(mine.success());
    // Not everyone may switch users: only root's child can be another.
    let switched = euid == 0 && {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("/bin/true").uid(other).status().unwrap().success()
    };
    probes.remove_cgroup(id).unwrap();
    let records = probes.drain().unwrap();
    let execs: Vec<_> = records
        .iter()
        .filter(|r| r.head.cgroup_id == id && r.head.record == abi::RECORD_LIFECYCLE && r.head.op == abi::LIFE_EXEC)
        .collect();
    let as_me = execs.iter().find(|r| r.head.euid == euid).unwrap_or_else(|| panic!("no exec as {euid}: {execs:#?}"));
    assert_ne!(as_me.head.row, row, "a named user's row is its own");
    assert_eq!(process(&probes, as_me.head.row), Some(vec![true]));
    if switched {
        let as_other = execs.iter().find(|r| r.head.euid == other).unwrap_or_else(|| panic!("no exec as {other}"));
        assert_eq!(as_other.head.row, row, "a user no condition names keeps the container's row");
    }
}

#[test]
fn pinned_programs_outlive_their_loader_until_unpinned() {
    d4c_kernel_probes::probes::ensure_bpffs().expect("a bpffs at /sys/fs/bpf");
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/d4c-test-{}", std::process::id()));
    let settings = Settings { lsm: false, enforce: false, ..Settings::default() };
    let mut probes = Probes::load(tables(), settings).unwrap();
    probes.attach_pinned(&dir.join("gen-1")).unwrap();
    drop(probes);
    // The loader is gone; the links are not.
    let pins: Vec<_> = std::fs::read_dir(dir.join("gen-1")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(pins.len(), 6, "{pins:?}");
    for pin in &pins {
        aya::programs::links::PinnedLink::from_pin(dir.join("gen-1").join(pin)).expect("a live pinned link");
    }
    assert_eq!(d4c_kernel_probes::probes::unpin_all(&dir).unwrap(), 6);
    assert!(!dir.exists());
    assert_eq!(d4c_kernel_probes::probes::unpin_all(&dir).unwrap(), 0, "uninstalling twice is fine");
}

/// This process's effective uid: the owner of its `/proc` directory.
fn geteuid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}
