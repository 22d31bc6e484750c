//! The source: the probes in force and the records they give.
//!
//! Input: the artifact's tables and the settings they are loaded with.
//! Output: the ring buffer's records ([`Source::drain`]), the kernel's
//! counters and program statistics since the daemon started (those of
//! probes replaced by reloads included: they never go back).
//! Invariant: exactly one set of probes is in force; a reload replaces it
//! only once the new one is attached ([`Source::replace`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use d4c_kernel_probes::probes::{self, CgroupMode, Pending, Probes, Record, Settings};

use crate::config::{Config, PendingMode};
use crate::load::{self, Policy};

/// The probes, the policy they were loaded with, and where they are
/// pinned once attached.
pub struct Active {
    /// The loaded and attached probes.
    pub probes: Probes,
    /// The policy.
    pub policy: Policy,
    /// The artifact file's identity when it was read (to see a change).
    pub file_stamp: Option<load::FileStamp>,
    /// The pin directory of the probes once attached (`None`: not pinned,
    /// so enforcement ends with the daemon).
    pub pinned: Option<PathBuf>,
}

/// The probes in force, what replaced probes counted, and where they are
/// pinned.
pub struct Source {
    active: Active,
    retired: Retired,
    /// Whether the BPF LSM is active (else: audit mode).
    lsm: bool,
    cgroup_mode: CgroupMode,
}

impl Source {
    /// Loads (verifies) the probes of `tables`, not yet attached (see
    /// [`Source::attach`]): containers can be given rows first.
    pub fn load(
        config: &Config,
        policy: Policy,
        tables: d4c_artifact::eval::Tables,
        stamp: Option<load::FileStamp>,
        cgroup_mode: CgroupMode,
    ) -> Result<Source, String> {
        let lsm = probes::bpf_lsm_active().unwrap_or(false);
        let probes = load_probes(config, tables, lsm, cgroup_mode)?;
        Ok(Source {
            active: Active { probes, policy, file_stamp: stamp, pinned: None },
            retired: Retired::default(),
            lsm,
            cgroup_mode,
        })
    }

    /// Attaches the probes loaded by [`Source::load`] (see [`attach`]).
    pub fn attach(&mut self, config: &Config) -> Result<(), String> {
        attach(config, &mut self.active)
    }

    /// Loads the probes of a new policy beside the ones in force, not yet
    /// attached: give them every root and container, then
    /// [`Source::attach_next`] and [`Source::replace`].
    pub fn load_next(
        &self,
        config: &Config,
        policy: Policy,
        tables: d4c_artifact::eval::Tables,
        stamp: Option<load::FileStamp>,
    ) -> Result<Active, String> {
        let probes = load_probes(config, tables, self.lsm, self.cgroup_mode)?;
        Ok(Active { probes, policy, file_stamp: stamp, pinned: None })
    }

    /// Attaches `next` beside the probes in force (make before break):
    /// from then on both decide every operation, and either refuses. The
    /// caller then drains the old probes' last records, which the old
    /// policy explains, and [`Source::replace`]s them.
    pub fn attach_next(&self, config: &Config, next: &mut Active) -> Result<(), String> {
        attach(config, next)
    }

    /// Puts `next` (attached) in force and lets the old probes go; what
    /// they counted is kept.
    pub fn replace(&mut self, next: Active) {
        let old = std::mem::replace(&mut self.active, next);
        self.retired.add(&old.probes);
    }

    /// The ring buffer's records since the last drain.
    pub fn drain(&mut self) -> Result<Vec<Record>, String> {
        self.active.probes.drain().map_err(|e| e.to_string())
    }

    /// The probes in force.
    pub fn probes(&self) -> &Probes {
        &self.active.probes
    }

    /// The probes in force, to change their rows or settings.
    pub fn probes_mut(&mut self) -> &mut Probes {
        &mut self.active.probes
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.active.policy
    }

    /// The artifact file's identity when the policy in force was read.
    pub fn file_stamp(&self) -> Option<load::FileStamp> {
        self.active.file_stamp
    }

    /// Whether the BPF LSM is active (else: audit mode).
    pub fn lsm(&self) -> bool {
        self.lsm
    }

    /// The pin directory of the probes in force.
    pub fn pinned(&self) -> Option<&Path> {
        self.active.pinned.as_deref()
    }

    /// The kernel's counters since the daemon started, by index (the
    /// probes in force and those replaced by reloads).
    pub fn kernel_counters(&self) -> Result<Vec<u64>, String> {
        let mut counters = self.active.probes.counters().map_err(|e| e.to_string())?;
        for (value, retired) in counters.iter_mut().zip(&self.retired.counters) {
            *value = value.saturating_add(*retired);
        }
        Ok(counters)
    }

    /// Every program's statistics since the daemon started (runs and run
    /// time of replaced probes included).
    pub fn program_stats(&self) -> Vec<probes::ProgramStats> {
        let mut stats = self.active.probes.stats();
        for program in &mut stats {
            if let Some((runs, ns)) = self.retired.programs.get(&program.name) {
                program.run_count = program.run_count.saturating_add(*runs);
                program.run_time_ns = program.run_time_ns.saturating_add(*ns);
            }
        }
        stats
    }
}

/// The kernel counters and program statistics of probes no longer in
/// force (each reload replaces the probes, whose maps and programs start
/// from zero).
#[derive(Debug, Default, Clone)]
struct Retired {
    /// `d4c_counters`, by index.
    counters: Vec<u64>,
    /// Per program: times run, and nanoseconds run.
    programs: BTreeMap<String, (u64, u64)>,
}

impl Retired {
    /// Adds what `probes` counted.
    fn add(&mut self, probes: &Probes) {
        if let Ok(counters) = probes.counters() {
            self.counters.resize(self.counters.len().max(counters.len()), 0);
            for (sum, value) in self.counters.iter_mut().zip(counters) {
                *sum = sum.saturating_add(value);
            }
        }
        for program in probes.stats() {
            let entry = self.programs.entry(program.name).or_default();
            entry.0 = entry.0.saturating_add(program.run_count);
            entry.1 = entry.1.saturating_add(program.run_time_ns);
        }
    }
}

/// Attaches `active`'s probes, pinned in a new generation directory below
/// the configured pin directory when there is one (`active.pinned`); then
/// removes every other generation (the probes of a crashed or upgraded daemon, or of
/// the policy just replaced): make before break, so enforcement never
/// lapses. When pinning is impossible (no bpffs), the probes are attached
/// unpinned and the daemon says so: enforcement then ends with it.
fn attach(config: &Config, active: &mut Active) -> Result<(), String> {
    active.pinned = None;
    if config.pin_dir.as_os_str().is_empty() {
        return active.probes.attach().map_err(|e| e.to_string());
    }
    if let Err(error) = probes::ensure_bpffs() {
        tracing::warn!(%error, "no BPF file system at /sys/fs/bpf: the probes are NOT pinned, and enforcement ends with the daemon");
        return active.probes.attach().map_err(|e| e.to_string());
    }
    let generation = config.pin_dir.join(format!("rev{}-{}", active.policy.revision, crate::facts::boot_ns()));
    active.probes.attach_pinned(&generation).map_err(|e| e.to_string())?;
    let others: Vec<PathBuf> = std::fs::read_dir(&config.pin_dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| *p != generation).collect())
        .unwrap_or_default();
    for old in others {
        match probes::unpin_all(&old) {
            Ok(n) => tracing::info!(pins = n, dir = %old.display(), "earlier probes detached"),
            Err(error) => tracing::error!(%error, "cannot remove earlier probes' pins"),
        }
    }
    active.pinned = Some(generation);
    Ok(())
}

/// Removes every pinned probe below the configured pin directory
/// (`d4c-runtime --uninstall`): enforcement ends. Returns how many links
/// were removed.
pub fn uninstall(config: &Config) -> Result<usize, String> {
    if config.pin_dir.as_os_str().is_empty() {
        return Ok(0);
    }
    probes::unpin_all(&config.pin_dir).map_err(|e| e.to_string())
}

/// Loads (verifies) the probes for `tables`; enforcement only with the BPF
/// LSM and `enforce`.
fn load_probes(
    config: &Config,
    tables: d4c_artifact::eval::Tables,
    lsm: bool,
    cgroup_mode: CgroupMode,
) -> Result<Probes, String> {
    let settings = Settings {
        enforce: lsm && config.enforce,
        cgroup_mode,
        max_rows: config.max_rows,
        pending: match config.pending {
            PendingMode::FailClosed => Pending::FailClosed,
            PendingMode::NoContainerConditions => Pending::NoContainerConditions,
        },
        lsm,
    };
    Probes::load(tables, settings).map_err(|e| e.to_string())
}
