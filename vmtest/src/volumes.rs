//! `d4c-vmtest volumes`: what the probes report for a write, a create and
//! an exec on each kind of mount a kubelet gives a container, in one
//! container made by containerd through the CRI: the overlay root file
//! system, an emptyDir, a single file by `subPath` of an emptyDir, a
//! ConfigMap directory (the atomic writer's symlinks, read-only), a
//! ConfigMap key by `subPath` (read-only) and a hostPath directory.
//!
//! The policy ([`POLICY`]) alerts on the same file operations under three
//! selectors that differ only in `ignoreVolumeMounts` and
//! `ignoreVolumeFiles`, and logs every exec. Each case checks the errno,
//! the actor's decision records (operation, path, volume flag) and the
//! selectors each record matched, which docs/scenarios.md defines: on the
//! root file system all three; on a volume `watchAll` and
//! `skipMountedFiles`; on a single-file mount `watchAll` only.
//!
//! Out: one `D4C-VMTEST-VOLUMES-CASE:` line per case with what the kernel
//! reported, and a summary, or the failed cases.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use d4c_artifact::eval::Tables;
use d4c_artifact::event::Container as Meta;
use d4c_artifact::ops::{Kind, Operation};
use d4c_kernel_probes::abi;
use d4c_kernel_probes::probes::{Probes, Record, Settings};

use crate::bundle::{Actor, AgentOp, Container, ContainerSpec};

/// The check's policy: one watch, three ways of treating volumes.
pub const POLICY: &str = "\
file:
  selectors:
    - name: watchAll
      operation: [createFile, modifyFile, createExecutable, modifyExecutable]
      targetFilePath: [/srv/**, /etc/**, /data/**]
    - name: skipMounts
      operation: [createFile, modifyFile, createExecutable, modifyExecutable]
      targetFilePath: [/srv/**, /etc/**, /data/**]
      ignoreVolumeMounts: true
    - name: skipMountedFiles
      operation: [createFile, modifyFile, createExecutable, modifyExecutable]
      targetFilePath: [/srv/**, /etc/**, /data/**]
      ignoreVolumeFiles: true
  responses:
    - match: [watchAll, skipMounts, skipMountedFiles]
      actions: [alert]
process:
  selectors:
    - name: execs
      operation: [exec]
  responses:
    - match: [execs]
      actions: [log]
";

/// Where the image archive goes while it is imported.
const WORKDIR: &str = "/tmp/d4c-vmtest-volumes";
/// The actor of every case.
const ACTOR: &str = "/usr/bin/tool";

/// The container: one mount of each kind, with files in each.
fn spec() -> ContainerSpec {
    ContainerSpec {
        name: "volumes".into(),
        pod_uid: "0d4c0000-7010-4e57-8000-0000000070a1".into(),
        image: Some("docker.io/library/debian:12".into()),
        namespace: Some("vol".into()),
        pod: Some("volumes".into()),
        volumes: vec!["/data".into()],
        volume_files: vec!["/etc/app/single.conf".into()],
        config_maps: vec!["/etc/conf".into()],
        config_map_files: vec!["/etc/key.conf".into()],
        host_paths: vec!["/srv/host".into()],
        files: vec![
            (ACTOR.into(), 0o755),
            ("/etc/root.conf".into(), 0o644),
            ("/data/existing.txt".into(), 0o644),
            ("/data/tool".into(), 0o755),
            ("/etc/conf/app.yaml".into(), 0o644),
            ("/etc/conf/run.sh".into(), 0o755),
            ("/srv/host/existing.txt".into(), 0o644),
            ("/srv/host/tool".into(), 0o755),
        ],
        ..ContainerSpec::default()
    }
}

/// The volume flag a record must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    RootFs,
    Volume,
    VolumeFile,
    /// A process record (no volume).
    Process,
}

impl Flag {
    fn code(self) -> Option<u32> {
        match self {
            Flag::RootFs => Some(abi::VOLUME_ROOTFS),
            Flag::Volume => Some(abi::VOLUME_DIR),
            Flag::VolumeFile => Some(abi::VOLUME_FILE),
            Flag::Process => None,
        }
    }

    /// The file selectors that match on this kind of mount
    /// (docs/scenarios.md).
    fn selectors(self) -> &'static [&'static str] {
        match self {
            Flag::RootFs => &["skipMountedFiles", "skipMounts", "watchAll"],
            Flag::Volume => &["skipMountedFiles", "watchAll"],
            Flag::VolumeFile => &["watchAll"],
            Flag::Process => &["execs"],
        }
    }
}

/// Where a record's path must be.
#[derive(Debug, Clone)]
enum WantPath {
    Is(&'static str),
    /// Below this directory, whatever the rest (a ConfigMap's
    /// `..<timestamp>` directory).
    Under(&'static str),
}

/// One case: a kind of mount, an op, and what the kernel must do.
struct Case {
    kind: &'static str,
    op: AgentOp,
    errno: i32,
    /// The decision record (none when the kernel refuses the call before
    /// any hook: a read-only mount).
    record: Option<(Operation, WantPath, Flag)>,
}

fn cases() -> Vec<Case> {
    use Operation::{CreateFile, Exec, ModifyFile};
    let write = |p: &str| AgentOp::Write(p.into());
    let create = |p: &str| AgentOp::Create { path: p.into(), mode: 0o644 };
    let exec = |p: &str| AgentOp::Exec(p.into());
    let case = |kind, op, errno, record| Case { kind, op, errno, record };
    let erofs = libc::EROFS;
    vec![
        case("rootfs", write("/etc/root.conf"), 0, Some((ModifyFile, WantPath::Is("/etc/root.conf"), Flag::RootFs))),
        case("rootfs", create("/etc/new.conf"), 0, Some((CreateFile, WantPath::Is("/etc/new.conf"), Flag::RootFs))),
        case("rootfs", exec(ACTOR), 0, Some((Exec, WantPath::Is(ACTOR), Flag::Process))),
        case(
            "emptyDir",
            write("/data/existing.txt"),
            0,
            Some((ModifyFile, WantPath::Is("/data/existing.txt"), Flag::Volume)),
        ),
        case("emptyDir", create("/data/new.txt"), 0, Some((CreateFile, WantPath::Is("/data/new.txt"), Flag::Volume))),
        case("emptyDir", exec("/data/tool"), 0, Some((Exec, WantPath::Is("/data/tool"), Flag::Process))),
        case(
            "subPath-file",
            write("/etc/app/single.conf"),
            0,
            Some((ModifyFile, WantPath::Is("/etc/app/single.conf"), Flag::VolumeFile)),
        ),
        case("configMap", write("/etc/conf/app.yaml"), erofs, None),
        case("configMap", create("/etc/conf/new.yaml"), erofs, None),
        case("configMap", exec("/etc/conf/run.sh"), 0, Some((Exec, WantPath::Under("/etc/conf/"), Flag::Process))),
        case("configMap-key", write("/etc/key.conf"), erofs, None),
        case(
            "hostPath",
            write("/srv/host/existing.txt"),
            0,
            Some((ModifyFile, WantPath::Is("/srv/host/existing.txt"), Flag::Volume)),
        ),
        case(
            "hostPath",
            create("/srv/host/new.txt"),
            0,
            Some((CreateFile, WantPath::Is("/srv/host/new.txt"), Flag::Volume)),
        ),
        case("hostPath", exec("/srv/host/tool"), 0, Some((Exec, WantPath::Is("/srv/host/tool"), Flag::Process))),
    ]
}

/// Runs every case. `Ok(summary)` when all passed.
pub fn run() -> Result<String, String> {
    let started = Instant::now();
    let tables = crate::guest::tables_of(POLICY.as_bytes())?;
    let workdir = PathBuf::from(WORKDIR);
    std::fs::create_dir_all(&workdir).map_err(|e| format!("cannot create `{}`: {e}", workdir.display()))?;
    let mut container = Container::start(&spec(), &workdir)?;
    let result = perform(&mut container, &tables);
    let stopped = container.stop();
    let _ = std::fs::remove_dir_all(&workdir);
    let (count, failed) = result?;
    stopped?;
    if failed.is_empty() {
        Ok(format!("cases={count} seconds={:.1}", started.elapsed().as_secs_f64()))
    } else {
        Err(format!("{} of {count} cases failed: {}", failed.len(), failed.join(", ")))
    }
}

/// Stages an actor per case, loads the probes, performs the cases.
fn perform(container: &mut Container, tables: &Tables) -> Result<(usize, Vec<String>), String> {
    let actor = Actor { exe: ACTOR.into(), name: None, interactive: false, uid: 0 };
    let cases = cases();
    let mut staged = Vec::new();
    for _ in &cases {
        let id = container.stage(&actor)?;
        staged.push((id, container.staged_pid(id)?));
    }
    let mut probes = crate::guest::attach_probes(tables, Settings::default(), container, &Meta::default())?;
    let mut failed = Vec::new();
    for (case, (id, pid)) in cases.iter().zip(staged) {
        let outcome = container.perform(id, &case.op)?;
        let records = crate::guest::decisions_of(&mut probes, pid)?;
        let errno =
            if matches!(case.op, AgentOp::Exec(_)) && outcome.errno == libc::ENOEXEC { 0 } else { outcome.errno };
        let mut problems = Vec::new();
        if errno != case.errno {
            problems.push(format!("errno {errno}, expected {}", case.errno));
        }
        let described: Vec<String> = records.iter().map(|r| describe(r, &probes, tables)).collect();
        match (&case.record, records.as_slice()) {
            (None, []) => {}
            (Some(want), [record]) => problems.extend(check(want, record, &probes, tables)),
            (want, got) => {
                problems.push(format!("expected {} records, got {}", usize::from(want.is_some()), got.len()))
            }
        }
        let name = format!("{} `{}`", case.kind, case.op);
        println!(
            "D4C-VMTEST-VOLUMES-CASE: {} {name} errno={} records=[{}]{}",
            if problems.is_empty() { "ok" } else { "FAIL" },
            outcome.errno,
            described.join(" "),
            if problems.is_empty() { String::new() } else { format!(" problems: {}", problems.join("; ")) }
        );
        if !problems.is_empty() {
            failed.push(name);
        }
    }
    Ok((cases.len(), failed))
}

/// The selectors a record's row entry matched, by name, sorted.
fn matched(record: &Record, probes: &Probes, tables: &Tables) -> BTreeSet<String> {
    let kind = if record.head.kind == abi::KIND_FILE { Kind::File } else { Kind::Process };
    probes
        .matched_selectors(record)
        .into_iter()
        .filter_map(|i| tables.kind(kind).selectors.get(i).map(|s| s.name.clone()))
        .collect()
}

/// What is wrong with a record.
fn check(want: &(Operation, WantPath, Flag), record: &Record, probes: &Probes, tables: &Tables) -> Vec<String> {
    let (operation, path, flag) = want;
    let mut problems = Vec::new();
    let h = &record.head;
    let kind = if h.kind == abi::KIND_FILE { Kind::File } else { Kind::Process };
    if kind != operation.kind() || h.op as usize != operation.table_index() {
        problems.push(format!("expected a `{}` record", operation.name()));
    }
    let got = record.path_text();
    let ok = match path {
        WantPath::Is(p) => got == *p,
        WantPath::Under(p) => got.starts_with(p),
    };
    if !ok {
        problems.push(format!("expected the path {path:?}, got `{got}`"));
    }
    if let Some(code) = flag.code() {
        if h.volume != code {
            problems.push(format!("expected the volume {flag:?} ({code}), got {}", h.volume));
        }
    }
    if h.flags & abi::EV_TRUNCATED != 0 {
        problems.push("truncated".into());
    }
    let names = matched(record, probes, tables);
    let want: BTreeSet<String> = flag.selectors().iter().map(|s| s.to_string()).collect();
    if names != want {
        problems.push(format!("matched {names:?}, expected {want:?}"));
    }
    problems
}

/// A record on one line.
fn describe(record: &Record, probes: &Probes, tables: &Tables) -> String {
    let h = &record.head;
    let kind = if h.kind == abi::KIND_FILE { Kind::File } else { Kind::Process };
    let op = Operation::of_kind(kind).get(h.op as usize).map_or("?", |o| o.name());
    let volume = match (kind, h.volume) {
        (Kind::Process, _) => "-",
        (_, abi::VOLUME_ROOTFS) => "rootfs",
        (_, abi::VOLUME_DIR) => "volume",
        (_, abi::VOLUME_FILE) => "volume-file",
        _ => "?",
    };
    let names: Vec<String> = matched(record, probes, tables).into_iter().collect();
    format!("{{{op} `{}` volume={volume} flags={:#x} matched={}}}", record.path_text(), h.flags, names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_compiles_and_every_case_is_well_formed() -> Result<(), String> {
        let tables = crate::guest::tables_of(POLICY.as_bytes())?;
        for flag in [Flag::RootFs, Flag::Volume, Flag::VolumeFile] {
            for name in flag.selectors() {
                assert!(tables.kind(Kind::File).selectors.iter().any(|s| s.name == *name), "{name}");
            }
        }
        let spec = spec();
        for case in cases() {
            for path in case.op.strings() {
                assert!(path.starts_with('/'), "{path}");
            }
            if let Some((operation, _, flag)) = &case.record {
                assert_eq!(operation.kind() == Kind::Process, *flag == Flag::Process, "{}", case.kind);
            }
        }
        assert!(spec.files.iter().any(|(f, _)| f == ACTOR));
        Ok(())
    }
}
