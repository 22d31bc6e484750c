//! The daemon: its parts and its turns.
//!
//! Data flows one way through four parts, each owning its state:
//!
//! - [`source::Source`]: the probes in force; the ring buffer's records.
//! - [`enricher::Enricher`]: records to ECS documents (process cache,
//!   decisions waiting for their outcome, facts).
//! - [`control_plane::ControlPlane`]: which cgroups are containers and
//!   what each is (scan, watch, bundles, Kubernetes); their kernel rows.
//! - [`reloader::Reloader`]: when the artifact holds a new version.
//!
//! [`Daemon`] composes them and is turned from the main loop
//! ([`crate::run`]): drain the ring buffer, scan for containers, check
//! the artifact for a new revision, render the metrics. One task owns all
//! of it; nothing here waits on the network.

pub mod control_plane;
pub mod enricher;
pub mod reloader;
pub mod source;

use d4c_artifact::display::escape_control;
use d4c_kernel_probes::probes::{self, Probes, Record};

use crate::config::Config;
use crate::containers::Registry;
use crate::document::Document;
use crate::ecs::Facts;
use crate::facts::Node;
use crate::load::{self, Policy};
use crate::pipeline::Pipeline;

use control_plane::ControlPlane;
use enricher::{Enricher, Inputs};
use reloader::{ReloadError, Reloader};
use source::Source;

pub use control_plane::PASSWD_REFRESH_NS;
pub use enricher::MAX_EXPLAINED;
pub use source::uninstall;

/// Counters of the daemon (the pipeline's are [`Pipeline::tallies`], the
/// kernel's are read from the probes).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Ring buffer reads that failed.
    pub bad_records: u64,
    /// Container scans done.
    pub scans: u64,
    /// Containers registered since start.
    pub containers_added: u64,
    /// Containers removed since start.
    pub containers_removed: u64,
    /// Bundles that could not be read or parsed, or that do not describe
    /// a Kubernetes container (the container stays pending and is
    /// retried).
    pub bundle_errors: u64,
    /// Container scans that could not read the cgroup tree (the registry
    /// was kept as it was).
    pub scan_failures: u64,
    /// Containers found whose row could not be made (`max_rows`
    /// exhausted, a map error): they stay pending.
    pub registration_failures: u64,
    /// Artifact reloads done, and refused.
    pub reloads: u64,
    /// Reloads refused (the current policy stayed; that version is not
    /// read again until the file changes).
    pub reloads_refused: u64,
    /// Reloads that failed for a reason of the node (the current policy
    /// stayed; tried again at the next check).
    pub reloads_failed: u64,
    /// Nanoseconds from a container's cgroup to its registration, last
    /// and worst (from the first record that found it pending when there
    /// was one, else from the scan that found it).
    pub registration_window_ns: (u64, u64),
}

/// The daemon: its four parts, the configuration and the counters.
pub struct Daemon {
    config: Config,
    source: Source,
    enricher: Enricher,
    control: ControlPlane,
    reloader: Reloader,
    counters: Counters,
}

impl Daemon {
    /// Loads the artifact, the probes, the kubepods roots and the
    /// containers; attaches the probes. Errors say what failed and where.
    pub fn start(config: Config) -> Result<Daemon, String> {
        let (policy, tables, stamp) = load::load_configured(&config).map_err(|e| e.to_string())?;
        // The host's root through pid 1 (hostPID), else our own.
        let host_root = if config.host_root.join("etc").is_dir() {
            config.host_root.clone()
        } else {
            std::path::PathBuf::from("/")
        };
        let node = Node::read(&host_root);
        let agent_id = crate::facts::agent_id(config.agent_id.as_deref(), &node, &config.state_dir)?;
        let facts = Facts {
            agent_id,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            host: node.host_fields(config.node_name.as_deref(), None),
            cloud: None,
            cluster_id: config.cluster_id.clone(),
            cluster_name: config.cluster_name.clone(),
            namespace: config.namespace.clone(),
            policy_id: policy.name.clone(),
            policy_revision: policy.revision,
            policy_digest: policy.digest.clone(),
            boot_epoch_ns: crate::facts::boot_epoch_ns(),
            boot_id: node.boot_id.clone().unwrap_or_default(),
            fixed_json: Default::default(),
        };
        let control = ControlPlane::new(&config, node)?;
        let source = Source::load(&config, policy, tables, stamp, control.cgroup_mode())?;
        let mut daemon = Daemon {
            enricher: Enricher::new(facts, config.process_cache, config.proc_root.clone()),
            config,
            source,
            control,
            reloader: Reloader::default(),
            counters: Counters::default(),
        };
        daemon.control.find_roots(daemon.source.probes_mut())?;
        // Rows before the probes attach: no container starts unknown.
        daemon.scan();
        daemon.source.attach(&daemon.config)?;
        Ok(daemon)
    }

    /// Scans the cgroup tree: registers new containers whose bundle can be
    /// read, forgets the ones gone (see [`ControlPlane::scan`]); the
    /// records' path learns what changed.
    pub fn scan(&mut self) {
        let changes =
            self.control.scan(&self.config, self.source.probes_mut(), self.enricher.facts_mut(), &mut self.counters);
        for (cgroup_id, dir) in &changes.registered {
            self.enricher.learn_container(*cgroup_id, dir);
        }
        for cgroup_id in changes.users_changed {
            self.enricher.forget_users(cgroup_id);
        }
    }

    /// Whether a scan is due now: a pending container was seen, or the
    /// cgroup watch saw a cgroup made below a kubepods root.
    pub fn scan_due(&mut self) -> bool {
        self.control.scan_due()
    }

    /// Drains the ring buffer into documents; then what has waited too
    /// long for its outcome comes out. Returns the records drained (the VM
    /// suite checks them beside their documents).
    pub fn drain(&mut self, out: &mut Vec<Document>) -> Vec<Record> {
        let records = match self.source.drain() {
            Ok(records) => records,
            Err(error) => {
                self.counters.bad_records += 1;
                tracing::error!(%error, "cannot read the ring buffer");
                Vec::new()
            }
        };
        self.handle_all(&records, out);
        records
    }

    /// Records, in ring buffer order, to documents (see
    /// [`Enricher::handle_all`]). A record of a container whose metadata
    /// is pending makes a scan due.
    pub fn handle_all(&mut self, records: &[Record], out: &mut Vec<Document>) {
        let inputs = inputs(&self.source, &self.control, &self.config);
        if let Some((cgroup_id, ktime_ns)) = self.enricher.handle_all(records, &inputs, out) {
            self.control.saw_pending(cgroup_id, ktime_ns);
        }
    }

    /// One record (see [`Daemon::handle_all`]).
    pub fn handle(&mut self, record: &Record, out: &mut Vec<Document>) {
        self.handle_all(std::slice::from_ref(record), out);
    }

    /// Every decision still waiting for its outcome comes out (the daemon
    /// stops).
    pub fn flush(&mut self, out: &mut Vec<Document>) {
        let inputs = inputs(&self.source, &self.control, &self.config);
        self.enricher.flush(&inputs, out);
    }

    /// Whether the artifact file changed since it was loaded, into a
    /// version not already refused (see [`Reloader::due`]).
    pub fn artifact_changed(&self) -> bool {
        self.reloader.due(&self.config, self.source.file_stamp())
    }

    /// Loads the artifact again and switches to it without a gap: the new
    /// probes are loaded, given every root and container, and attached
    /// while the old ones still run; then the old ones are drained and
    /// detached. During the overlap an operation is decided by both and
    /// refused if either refuses, so no decision ever sees half of each
    /// policy and none goes undecided. A bad artifact is refused and the
    /// current policy stays. Returns the documents of the old probes' last
    /// records.
    ///
    /// The refused file's stamp is remembered: [`Daemon::artifact_changed`]
    /// does not offer that version again, so it is read, logged and
    /// counted once, not at every check.
    pub fn reload(&mut self, out: &mut Vec<Document>) -> Result<(), String> {
        let stamp = Reloader::stamp(&self.config);
        let result = self.try_reload(out);
        let revision = self.source.policy().revision;
        self.reloader.settle(&result, stamp, revision, &mut self.counters);
        result.map_err(|e| e.message)
    }

    fn try_reload(&mut self, out: &mut Vec<Document>) -> Result<(), ReloadError> {
        let (policy, tables, stamp) = load::load_configured(&self.config)?;
        let mut next = self.source.load_next(&self.config, policy, tables, stamp)?;
        self.control.populate(&mut next.probes, self.enricher.facts())?;
        self.source.attach_next(&self.config, &mut next)?;
        // Both attached: drain the old probes' last records with the old
        // policy's facts and selectors, then let them go.
        self.drain(out);
        self.source.replace(next);
        self.enricher.policy_changed(self.source.policy());
        let policy = self.source.policy();
        tracing::info!(
            policy = %policy.name, revision = policy.revision,
            digest = %policy.digest, "policy reloaded"
        );
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The daemon's own counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        self.source.policy()
    }

    /// The probes in force.
    pub fn probes(&self) -> &Probes {
        self.source.probes()
    }

    /// Whether the BPF LSM is active (else: audit mode).
    pub fn lsm(&self) -> bool {
        self.source.lsm()
    }

    /// Whether blocking responses refuse operations now (the VM suite
    /// turns it off for steps that must happen).
    pub fn set_enforce(&mut self, enforce: bool) -> Result<(), String> {
        self.source.probes_mut().set_enforce(enforce).map_err(|e| e.to_string())
    }

    /// The pin directory of the probes in force.
    pub fn pinned(&self) -> Option<&std::path::Path> {
        self.source.pinned()
    }

    /// The records' path (its tallies and sizes).
    pub fn pipeline(&self) -> &Pipeline {
        self.enricher.pipeline()
    }

    /// The container control plane (registry, roots, watch, Kubernetes).
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control
    }

    /// The containers registered.
    pub fn containers(&self) -> &Registry {
        self.control.registry()
    }

    /// Replaces the kubepods roots scanned (tests: roots that cannot be
    /// read make a scan fail).
    pub fn set_kubepods_roots(&mut self, roots: Vec<crate::cgroup::KubepodsRoot>) {
        self.control.set_roots(roots);
    }

    /// Registers container `cgroup_id` as `metadata` with rows as `view`
    /// describes it (see [`ControlPlane::describe_as`]).
    pub fn describe_as(
        &mut self,
        cgroup_id: u64,
        metadata: crate::containers::Metadata,
        view: &d4c_artifact::event::Container,
    ) -> Result<u32, String> {
        self.control.describe_as(self.source.probes_mut(), cgroup_id, metadata, view)
    }

    /// The kernel's counters since the daemon started, by index (the
    /// probes in force and those replaced by reloads).
    pub fn kernel_counters(&self) -> Result<Vec<u64>, String> {
        self.source.kernel_counters()
    }

    /// Every program's statistics since the daemon started (runs and run
    /// time of replaced probes included).
    pub fn program_stats(&self) -> Vec<probes::ProgramStats> {
        self.source.program_stats()
    }

    /// The start-up report: which capabilities are active on this kernel,
    /// in one readable block.
    pub fn report(&self, delivery: &str) -> String {
        let policy = self.source.policy();
        let stats = self.source.probes().stats();
        let verified: u64 = stats.iter().filter_map(|s| s.verified_instructions).map(u64::from).sum();
        let mode = match (self.source.lsm(), self.config.enforce) {
            (true, true) => "ENFORCING: blocking responses refuse operations".to_owned(),
            (true, false) => "audit (enforce = false in the configuration): nothing is blocked".to_owned(),
            (false, _) => "AUDIT ONLY: the BPF LSM is not active on this kernel (`bpf` is not in \
                           /sys/kernel/security/lsm; boot with lsm=...,bpf). File operations are not seen, \
                           process events are reported, NOTHING IS BLOCKED"
                .to_owned(),
        };
        format!(
            "d4c-runtime {} on {} (Linux {}, {})\n\
             \x20 policy      {} revision {} (sha256 {}), {}\n\
             \x20 mode        {}\n\
             \x20 probes      {} programs loaded, {} instructions verified{}\n\
             \x20 cgroups     {:?} at {}, {} kubepods root(s)\n\
             \x20 containers  {} registered, {} pending\n\
             \x20 pending     {:?}\n\
             \x20 pinned      {}\n\
             \x20 kubernetes  {}\n\
             \x20 delivery    {}\n\
             \x20 endpoints   http://{}/metrics /healthz /readyz",
            env!("CARGO_PKG_VERSION"),
            self.config.node_name.as_deref().or(self.control.node().hostname.as_deref()).unwrap_or("?"),
            self.control.node().kernel.as_deref().unwrap_or("?"),
            self.control.node().architecture,
            escape_control(&policy.name),
            policy.revision,
            policy.digest.get(..16).unwrap_or(&policy.digest),
            if policy.signed { "signature checked" } else { "unsigned (no --trusted-key)" },
            mode,
            stats.len(),
            verified,
            absent_hooks(self.source.probes().absent_hooks()),
            self.control.cgroup_mode(),
            self.control.cgroupfs().display(),
            self.control.roots().len(),
            self.control.registry().len(),
            self.control.pending(),
            self.config.pending,
            match self.source.pinned() {
                Some(dir) => format!("yes, at {}: enforcement outlives the daemon", dir.display()),
                None => "NO: enforcement ends when the daemon does".to_owned(),
            },
            match (self.control.kube_enabled(), self.config.node_name.as_deref()) {
                (true, Some(node)) => format!("watching the pods of node {node} (labels, cluster id)"),
                _ => "off: metadata from bundles only (no pod labels, no cluster id)".to_owned(),
            },
            delivery,
            self.config.listen,
        )
    }
}

/// What the enricher reads of the other parts (borrowed beside it).
fn inputs<'a>(source: &'a Source, control: &'a ControlPlane, config: &Config) -> Inputs<'a> {
    Inputs { probes: source.probes(), registry: control.registry(), lsm: source.lsm(), pending: config.pending }
}

/// The optional LSM hooks this kernel lacks and the optional tracepoints
/// it refused, and what stands in for each, for the start-up report
/// (empty when none).
fn absent_hooks(absent: &[&str]) -> String {
    use d4c_kernel_probes::probes::{OPTIONAL_LSM_HOOKS, OPTIONAL_TRACEPOINTS};
    absent
        .iter()
        .map(|hook| match OPTIONAL_TRACEPOINTS.iter().find(|(h, _)| h == hook) {
            Some((_, why)) => format!("; not attached: {hook} ({why})"),
            None => {
                let instead = OPTIONAL_LSM_HOOKS.iter().find(|(h, _)| h == hook).map_or("", |(_, why)| *why);
                format!("; not in this kernel: {hook} ({instead})")
            }
        })
        .collect()
}
